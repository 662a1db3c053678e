"""SSH to an instance with paramiko; paramiko's and socket's errors become remote.errors here."""

from __future__ import annotations

from pathlib import Path

import paramiko

from remote.errors import AuthRefused, ConnectError

DEFAULT_USER = "root"  # vast.ai's user
PROBE_TIMEOUT_S = 10.0


class _AcceptForProbe(paramiko.MissingHostKeyPolicy):
    """The readiness probe sends nothing secret and runs nothing that matters, so any host key
    is fine for it; the tasks pin host keys per stack (accept-new)."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        return None


def login_probe(
    host: str, port: int, key_path: Path, *, user: str = DEFAULT_USER,
    timeout: float = PROBE_TIMEOUT_S,
) -> str | None:
    """Log in with the key and run `true`: None when that worked, else the reason why not.

    A banner alone is not enough: keys can reach authorized_keys after sshd is up.
    """
    try:
        run_true(host, port, key_path, user=user, timeout=timeout)
    except (ConnectError, AuthRefused) as exc:
        return str(exc)
    return None


def run_true(host: str, port: int, key_path: Path, *, user: str, timeout: float) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_AcceptForProbe())
    try:
        client.connect(
            host, port=port, username=user, key_filename=str(key_path), timeout=timeout,
            banner_timeout=timeout, auth_timeout=timeout, allow_agent=False,
            look_for_keys=False,
        )
        _, stdout, _ = client.exec_command("true", timeout=timeout)
        status = stdout.channel.recv_exit_status()
        if status != 0:
            raise ConnectError(host, port, f"`true` exited {status}")
    except paramiko.AuthenticationException as exc:
        raise AuthRefused(host, port, f"key {key_path} refused ({exc})") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ConnectError(host, port, f"{type(exc).__name__}: {exc}") from exc
    finally:
        client.close()
