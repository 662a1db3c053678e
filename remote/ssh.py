"""SSH to an instance with paramiko; paramiko's and socket's errors become remote.errors here.

Connection is what sync, batch and pull share: key auth only, the host key pinned per stack
and instance (accept-new: the first key seen is kept, a different one later is refused),
keepalives so a NAT or proxy does not drop an idle channel, and retries on refused or reset
connections against a deadline (a fresh instance's sshd may still be starting).
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko

from remote.errors import AuthRefused, CommandError, ConnectError, HostKeyChanged, SshError
from remote.process import RemoteProcess

DEFAULT_USER = "root"  # vast.ai's user
PROBE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 15.0
CONNECT_DEADLINE_S = 60.0
STALL_TIMEOUT_S = 120.0
"""A remote stream that sends nothing for this long has stalled (sync, pull, listing)."""
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
KEEPALIVE_S = 15
SEND_SLICE = 256 * 1024
"""paramiko's sendall copies what is left on every pass: big writes go in slices."""


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
            _server_rekeys(transport)
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
        """Run a command and capture its output; CommandError when it exits non-zero."""
        proc = self.start(command, timeout=timeout)
        try:
            if stdin is not None:
                proc.write(stdin)
            code, out, err = proc.capture()
        finally:
            proc.close()
        result = Result(command, code, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and code != 0:
            t = self.target
            raise CommandError(t.host, t.port, command, code, result.stdout, result.stderr)
        return result

    def start(self, command: str, *, timeout: float | None = None,
              interleaved: bool = False) -> ChannelProcess:
        """`command` running on a new channel of this connection (see ChannelProcess)."""
        return ChannelProcess(self, command, timeout=timeout, interleaved=interleaved)


class _ChannelStdout:
    """A channel's stdout as a binary file: read() fills what it is asked for (as files do),
    read1() returns what has arrived."""

    def __init__(self, proc: ChannelProcess) -> None:
        self._proc = proc

    def read1(self, n: int = -1) -> bytes:
        t = self._proc.target
        with ssh_errors(t.host, t.port):
            return self._proc.channel.recv(n if n > 0 else 1 << 20)

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            return self._proc.read_all()
        parts, got = [], 0
        while got < n and (chunk := self.read1(n - got)):
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def readinto(self, buffer: memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class ChannelProcess(RemoteProcess):
    """A command on a session channel of the paramiko Connection: no new login, so it is
    what short commands and the listing use. ``timeout`` bounds each read and write;
    ``interleaved`` leaves stderr to the caller, read with stdout through poll()."""

    def __init__(self, conn: Connection, command: str, *, timeout: float | None = None,
                 interleaved: bool = False) -> None:
        self.target = t = conn.target
        with ssh_errors(t.host, t.port):
            self.channel = conn.transport.open_session()
            self.channel.settimeout(timeout)
            self.channel.exec_command(command)
        super().__init__(_ChannelStdout(self),  # type: ignore[arg-type]
                         None if interleaved else self._recv_stderr)

    def poll(self, timeout: float) -> list[tuple[int, bytes]]:
        """What arrived within ``timeout``, as (0 for stdout or 1 for stderr, data)."""
        t = self.target
        got: list[tuple[int, bytes]] = []
        with ssh_errors(t.host, t.port):
            select.select([self.channel], [], [], timeout)
            while self.channel.recv_ready():
                got.append((0, self.channel.recv(65536)))
            while self.channel.recv_stderr_ready():
                got.append((1, self.channel.recv_stderr(65536)))
        return got

    @property
    def drained(self) -> bool:
        """Nothing left to read and nothing more will come (EOF, closed, or the link died)."""
        c = self.channel
        if c.recv_ready() or c.recv_stderr_ready():
            return False
        transport = c.get_transport()
        return c.eof_received or c.closed or transport is None or not transport.is_active()

    @property
    def exit_status(self) -> int:
        """The exit code if the command has reported one, else -1."""
        return self.channel.exit_status

    def _recv_stderr(self, n: int) -> bytes:
        """For the stderr thread, which must not give up when ``timeout`` passes without a
        word on stderr: the timeout is for the caller's reads and writes."""
        while True:
            try:
                return self.channel.recv_stderr(n)
            except TimeoutError:
                if self.channel.closed:
                    return b""

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        t = self.target
        with ssh_errors(t.host, t.port):
            for i in range(0, len(view), SEND_SLICE):
                self.channel.sendall(view[i : i + SEND_SLICE])

    def _close_stdin(self) -> None:
        t = self.target
        with ssh_errors(t.host, t.port):
            self.channel.shutdown_write()

    def _abort(self) -> None:
        self.channel.close()

    def _wait(self, timeout: float | None) -> int:
        ended = self.channel.status_event.wait(timeout)
        code = self.channel.exit_status if ended else -1
        self.channel.close()
        return code


def _server_rekeys(transport: paramiko.Transport) -> None:
    """Leave rekeying to sshd (its RekeyLimit, 1-4 GB for AES): paramiko's own rekey after
    512 MiB can stall a busy session channel until it fails with "Key-exchange timed out
    waiting for key negotiation" (paramiko#822, open; seen here on a 1 GiB pull). The
    server-initiated rekey works; raising the client's limit is the workaround given there."""
    packetizer = transport.packetizer
    packetizer.REKEY_BYTES = packetizer.REKEY_PACKETS = 1 << 62


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
