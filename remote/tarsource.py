"""The `tar -c` on the instance that a pull reads: through the system ssh client or over
the paramiko Connection, both behind one small interface (Source)."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from remote import openssh
from remote.errors import SshError
from remote.ssh import Connection, Target, ssh_errors

CHUNK = 1 << 20
STOP_WAIT_S = 2.0
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_BYTES = 1 << 20
class StallWatch:
    """Calls on_stall once when touch() has not been called for stall_s: a stream that stops
    mid-way (a remote tar stopped, a link gone quiet) must not hold a pull, and the instance
    billing, forever."""

    def __init__(self, stall_s: float, on_stall: Callable[[], object]) -> None:
        self.stall_s = stall_s
        self.stalled = False
        self._on_stall = on_stall
        self._last = time.monotonic()
        self._done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def touch(self) -> None:
        self._last = time.monotonic()

    def close(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(min(1.0, self.stall_s / 4)):
            if time.monotonic() - self._last > self.stall_s:
                self.stalled = True
                self._on_stall()
                return


class _Watched:
    """A source's stdout whose every read counts as a sign of life for its StallWatch."""

    def __init__(self, stream: BinaryIO, watch: StallWatch) -> None:
        self._stream, self._watch = stream, watch

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._watch.touch()
        return data

    def readinto(self, buffer: memoryview) -> int:
        n = self._stream.readinto(buffer)  # type: ignore[attr-defined]
        self._watch.touch()
        return n or 0


class Source:
    """A `tar -c` on the instance that reads its names on stdin: started first (its login can
    overlap the listing), send() the names, read .stdout, then finish() or stop()."""

    stdout: BinaryIO

    def __init__(self, read_stderr: Callable[[int], bytes]) -> None:
        self._err = bytearray()
        self._threads = [threading.Thread(target=collect, args=(read_stderr, self._err),
                                          daemon=True)]
        self._threads[0].start()

    watch: StallWatch | None = None

    def watch_for_stall(self, stall_s: float) -> None:
        """From now on, stall_s without a byte aborts the stream (reads then end early)."""
        self.watch = StallWatch(stall_s, self._abort)
        self.stdout = _Watched(self.stdout, self.watch)  # type: ignore[assignment]

    @property
    def stalled(self) -> bool:
        return self.watch is not None and self.watch.stalled

    def send(self, names: bytes) -> None:
        """Feed the names from a thread: tar writes while it still reads them."""
        feeder = threading.Thread(target=_feed, args=(self._write, self._close_stdin, names),
                                  daemon=True)
        self._threads.append(feeder)
        feeder.start()

    def finish(self) -> tuple[int, str]:
        """Read to the end (so tar is not stopped by a closed pipe); exit code and stderr."""
        while self.stdout.read(CHUNK):
            pass
        code = self._wait(None)
        self._join(None)
        return code, self._err.decode(errors="replace")

    def stop(self, wait_s: float = STOP_WAIT_S) -> tuple[int, str]:
        """Give up on the stream: the exit code if it ends within wait_s, else -1; stderr."""
        code = self._wait(wait_s)
        self._join(STOP_WAIT_S)
        return code, self._err.decode(errors="replace")

    def _join(self, timeout: float | None) -> None:
        if self.watch is not None:
            self.watch.close()
        for thread in self._threads:
            thread.join(timeout)

    def _abort(self) -> None:
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _close_stdin(self) -> None:
        raise NotImplementedError

    def _wait(self, timeout: float | None) -> int:
        """The exit code; after `timeout` seconds, end it and return -1."""
        raise NotImplementedError


class SshSource(Source):
    """Through the system ssh client, the host key pinned to Connection's known_hosts."""

    def __init__(self, target: Target, command: str) -> None:
        self.proc = subprocess.Popen(openssh.ssh_argv(target, command), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        _widen_pipe(self.proc.stdout)
        self.stdout = self.proc.stdout
        self._stdin = self.proc.stdin
        super().__init__(self.proc.stderr.read)

    def _write(self, data: bytes) -> None:
        self._stdin.write(data)

    def _abort(self) -> None:
        self.proc.kill()

    def _close_stdin(self) -> None:
        self._stdin.close()

    def _wait(self, timeout: float | None) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -1


class ParamikoSource(Source):
    """Over the Connection's own transport."""

    def __init__(self, conn: Connection, command: str) -> None:
        self.target = conn.target
        _server_rekeys(conn)
        self.channel = conn.open_channel(command)
        self.stdout = self.channel.makefile("rb", CHUNK)
        super().__init__(self.channel.recv_stderr)

    def _write(self, data: bytes) -> None:
        with ssh_errors(self.target.host, self.target.port):
            self.channel.sendall(data)

    def _close_stdin(self) -> None:
        self.channel.shutdown_write()

    def _abort(self) -> None:
        self.channel.close()

    def _wait(self, timeout: float | None) -> int:
        ended = self.channel.status_event.wait(timeout)
        code = self.channel.exit_status if ended else -1
        self.channel.close()
        return code


def _server_rekeys(conn: Connection) -> None:
    """Leave rekeying to sshd (its RekeyLimit, 1-4 GB for AES) on this connection: paramiko's
    own rekey after 512 MiB received can stall a busy session channel until it fails with
    "Key-exchange timed out waiting for key negotiation" (paramiko#822, open; seen here on a
    1 GiB pull). The server-initiated rekey works; raising the client's limit is the workaround
    given in that issue."""
    packetizer = conn.transport.packetizer
    packetizer.REKEY_BYTES = packetizer.REKEY_PACKETS = 1 << 62


def _widen_pipe(pipe: BinaryIO) -> None:
    """A 1 MiB pipe instead of 64 KiB: fewer wakeups between ssh and us (Linux only)."""
    with contextlib.suppress(OSError):  # not Linux, or over pipe-max-size: 64 KiB works too
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_BYTES)


def _feed(write: Callable[[bytes], object], close: Callable[[], object], data: bytes) -> None:
    try:
        write(data)
        close()
    except (OSError, SshError):
        pass  # the reader side reports the broken stream


def collect(read: Callable[[int], bytes], into: bytearray) -> None:
    try:
        while chunk := read(65536):
            into.extend(chunk)
    except OSError:
        pass
