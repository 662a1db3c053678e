"""SSH to an instance with paramiko; paramiko's and socket's errors become remote.errors here.

Connection is what sync, batch and pull share: key auth only, the host key pinned per stack
and instance (accept-new: the first key seen is kept, a different one later is refused),
keepalives so a NAT or proxy does not drop an idle channel, and retries on refused or reset
connections against a deadline (a fresh instance's sshd may still be starting).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko

from remote.errors import AuthRefused, CommandError, ConnectError, HostKeyChanged, SshError

DEFAULT_USER = "root"  # vast.ai's user
PROBE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 15.0
CONNECT_DEADLINE_S = 60.0
STALL_TIMEOUT_S = 120.0
"""A remote stream that sends nothing for this long has stalled (sync, pull, listing)."""
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
KEEPALIVE_S = 15


@dataclass(frozen=True)
class Target:
    """Where and as whom to log in, and where this instance's host key is pinned."""

    host: str
    port: int
    key_path: Path
    known_hosts: Path
    user: str = DEFAULT_USER


@dataclass(frozen=True)
class Result:
    command: str
    exit_code: int
    stdout: str
    stderr: str


class _AcceptForProbe(paramiko.MissingHostKeyPolicy):
    """The readiness probe sends nothing secret and runs nothing that matters, so any host key
    is fine for it; Connection pins host keys per stack (accept-new)."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        return None


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """OpenSSH's StrictHostKeyChecking=accept-new, but per instance, not per address: the file
    is the instance's own (one per stack and instance id), so the first key is pinned and a new
    host:port is accepted only when it shows a key already pinned there (the instance moved);
    any other key is refused whatever the port."""

    def __init__(self, known_hosts: Path) -> None:
        self._known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        pinned = [k for keys in client.get_host_keys().values() for k in keys.values()]
        if pinned and key not in pinned:
            raise paramiko.BadHostKeyException(hostname, key, pinned[0])
        client.get_host_keys().add(hostname, key.get_name(), key)
        self._known_hosts.parent.mkdir(parents=True, exist_ok=True)
        client.save_host_keys(str(self._known_hosts))


class Connection:
    """One SSH connection to an instance; open lazily, use as a context manager."""

    def __init__(
        self, target: Target, *, deadline_s: float = CONNECT_DEADLINE_S,
        timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.target = target
        self._deadline_s = deadline_s
        self._timeout_s = timeout_s
        self._client: paramiko.SSHClient | None = None
        self.attempts = 0
        """Connection attempts the last open() needed."""

    def __enter__(self) -> Connection:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            self.open()
        assert self._client is not None
        return self._client

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectError(self.target.host, self.target.port, "connection lost")
        return transport

    def open(self) -> None:
        """Connect, retrying refused/reset/timeouts with backoff until the deadline."""
        if self._client is not None:
            return
        t = self.target
        deadline = time.monotonic() + self._deadline_s
        delay = RETRY_FIRST_S
        self.attempts = 0
        while True:
            self.attempts += 1
            try:
                self._client = self._connect_once()
                return
            except ConnectError as exc:
                if time.monotonic() + delay > deadline:
                    raise ConnectError(t.host, t.port, exc.reason, self.attempts) from exc
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _connect_once(self) -> paramiko.SSHClient:
        t = self.target
        client = paramiko.SSHClient()
        if t.known_hosts.exists():
            client.load_host_keys(str(t.known_hosts))
        client.set_missing_host_key_policy(_AcceptNew(t.known_hosts))
        try:
            with ssh_errors(t.host, t.port):
                client.connect(
                    t.host, port=t.port, username=t.user, key_filename=str(t.key_path),
                    timeout=self._timeout_s, banner_timeout=self._timeout_s,
                    auth_timeout=self._timeout_s, allow_agent=False, look_for_keys=False,
                )
        except paramiko.BadHostKeyException as exc:
            client.close()
            seen, pinned = _fingerprint(exc.key), _fingerprint(exc.expected_key)
            raise HostKeyChanged(t.host, t.port, t.known_hosts, seen, pinned) from exc
        except SshError:
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_S)
        return client

    def reopen(self, deadline_s: float) -> None:
        """Drop this connection and open a fresh one, retrying for at most deadline_s: how a
        stream that lost its link gets it back (remote/detached.py)."""
        self.close()
        saved = self._deadline_s
        self._deadline_s = deadline_s
        try:
            self.open()
        finally:
            self._deadline_s = saved

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(
        self, command: str, *, stdin: bytes | None = None, check: bool = True,
        timeout: float | None = None,
    ) -> Result:
        """Run a command and capture its output (reading both streams before the exit code,
        as paramiko requires, so a chatty command cannot hang us)."""
        t = self.target
        with ssh_errors(t.host, t.port):
            channel = self.transport.open_session()
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = _drain(channel)
            code = channel.recv_exit_status()
            channel.close()
        result = Result(command, code, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and code != 0:
            raise CommandError(t.host, t.port, command, code, result.stdout, result.stderr)
        return result

    def open_channel(self, command: str, *, pty: bool = False) -> paramiko.Channel:
        """A session channel running `command`, for callers that stream (batch, sync)."""
        t = self.target
        with ssh_errors(t.host, t.port):
            channel = self.transport.open_session()
            if pty:
                channel.get_pty()
            channel.exec_command(command)
        return channel


def _drain(channel: paramiko.Channel) -> tuple[bytes, bytes]:
    """Both streams to EOF; stderr in a thread, since the two share one flow-control window."""
    err = bytearray()

    def read_stderr() -> None:
        while chunk := channel.recv_stderr(65536):
            err.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    out = bytearray()
    while chunk := channel.recv(65536):
        out.extend(chunk)
    reader.join()
    return bytes(out), bytes(err)


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


@contextmanager
def ssh_errors(host: str, port: int) -> Iterator[None]:
    """The one boundary where paramiko's and socket's exceptions become ours."""
    try:
        yield
    except paramiko.BadHostKeyException:
        raise
    except paramiko.AuthenticationException as exc:
        raise AuthRefused(host, port, f"key refused ({exc})") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ConnectError(host, port, f"{type(exc).__name__}: {exc}") from exc


def login_probe(
    host: str, port: int, key_path: Path, *, user: str = DEFAULT_USER,
    timeout: float = PROBE_TIMEOUT_S,
) -> str | None:
    """Log in with the key and run `true`: None when that worked, else the reason why not.

    A banner alone is not enough: keys can reach authorized_keys after sshd is up.
    """
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_AcceptForProbe())
    try:
        with ssh_errors(host, port):
            client.connect(
                host, port=port, username=user, key_filename=str(key_path), timeout=timeout,
                banner_timeout=timeout, auth_timeout=timeout, allow_agent=False,
                look_for_keys=False,
            )
            _, stdout, _ = client.exec_command("true", timeout=timeout)
            status = stdout.channel.recv_exit_status()
        if status != 0:
            return f"ssh {host}:{port}: `true` exited {status}"
    except SshError as exc:
        return str(exc)
    finally:
        client.close()
    return None
