"""The system OpenSSH client, logged in exactly as Connection logs in.

Bulk streams (sync's tar, pull, rsync's -e) and the interactive shell go through OpenSSH when
it is installed: its C crypto moves data faster than paramiko, and a terminal needs a real
client. Same key only, no user ssh config, the host key pinned in the file paramiko writes
(`[host]:port type key`, which OpenSSH reads), never a prompt.
"""

from __future__ import annotations

import contextlib
import fcntl
import shlex
import subprocess

from remote.errors import ConnectError
from remote.process import RemoteProcess
from remote.ssh import Target

SSH_PROGRAM = "ssh"
CIPHERS = "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr"
"""AES-GCM first: with hardware AES it is the fastest."""
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_BYTES = 1 << 20


def ssh_options(target: Target, *, accept_new: bool = False) -> list[str]:
    """Options shared by ssh, scp and rsync's -e. `accept_new` pins a first key (the shell may
    be the first contact); otherwise the key must already be pinned by Connection."""
    known = str(target.known_hosts)
    if any(c.isspace() for c in known):  # ssh splits this option's value on whitespace
        known = f'"{known}"'
    return [
        "-F", "/dev/null", "-i", str(target.key_path), "-c", CIPHERS,
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"StrictHostKeyChecking={'accept-new' if accept_new else 'yes'}",
        "-o", "UpdateHostKeys=no", "-o", "ConnectTimeout=15",
        "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR",
    ]


def ssh_argv(
    target: Target, command: str | None = None, *, tty: bool = False, accept_new: bool = False
) -> list[str]:
    """`ssh ... host [command]`; with tty for an interactive session."""
    argv = [SSH_PROGRAM, *ssh_options(target, accept_new=accept_new),
            "-p", str(target.port), "-l", target.user, *(["-t"] if tty else ["-T", "-x"]),
            target.host]
    return [*argv, command] if command else argv


def rsync_rsh(target: Target) -> str:
    """The value of rsync's -e: ssh with our options (rsync adds the host itself)."""
    return shlex.join([SSH_PROGRAM, *ssh_options(target), "-p", str(target.port),
                       "-l", target.user])


class OpenSshProcess(RemoteProcess):
    """A command through the system ssh client: a login of its own, and C crypto, so it is
    what bulk streams use. ssh's own failures show as exit code 255 and its stderr."""

    def __init__(self, target: Target, command: str) -> None:
        self.target = target
        try:
            self.proc = subprocess.Popen(ssh_argv(target, command), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise ConnectError(target.host, target.port,
                               f"cannot start {SSH_PROGRAM}: {exc}") from exc
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        _widen_pipe(self.proc.stdout)
        self._stdin = self.proc.stdin
        super().__init__(self.proc.stdout, self.proc.stderr.read)  # type: ignore[arg-type]

    def _write(self, data: bytes | memoryview) -> None:
        try:
            self._stdin.write(data)
        except OSError as exc:  # ssh is gone: its exit code and stderr say why
            raise ConnectError(self.target.host, self.target.port,
                               f"{SSH_PROGRAM} stopped reading: {exc}") from exc

    def _close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()

    def _abort(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def _wait(self, timeout: float | None) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._abort()
            return -1


def _widen_pipe(pipe: object) -> None:
    """A 1 MiB pipe instead of 64 KiB: fewer wakeups between ssh and us (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or over pipe-max-size
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_BYTES)  # type: ignore[attr-defined]
