"""RemoteProcess: one contract, both back ends (a paramiko channel and the system ssh client),
against a vastsim instance's real sshd."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from remote.errors import SshError
from remote.openssh import OpenSshProcess
from remote.process import RemoteProcess
from remote.ssh import ChannelProcess, Connection, Target

pytestmark = pytest.mark.sshd

Start = Callable[[str], RemoteProcess]


@pytest.fixture
def conn(target: Target) -> Iterator[Connection]:
    with Connection(target) as c:  # also pins the host key the ssh client then checks
        yield c


@pytest.fixture(params=["paramiko", "openssh"])
def start(request: pytest.FixtureRequest, conn: Connection) -> Iterator[Start]:
    started: list[RemoteProcess] = []

    def make(command: str) -> RemoteProcess:
        proc = (conn.start(command) if request.param == "paramiko"
                else OpenSshProcess(conn.target, command))
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.close()


def test_capture_gives_stdout_stderr_and_the_exit_code(start: Start) -> None:
    code, out, err = start("printf 'out\\0\\377'; echo err >&2; exit 3").capture()
    assert (code, out, err) == (3, b"out\0\xff", b"err\n")


def test_stdin_written_then_closed_reaches_the_command(start: Start) -> None:
    proc = start("wc -c")
    proc.write(b"x" * 3_000_000)  # more than one channel window
    assert proc.capture()[:2] == (0, b"3000000\n")


def test_send_feeds_while_stdout_is_read(start: Start) -> None:
    """cat echoes as it reads: written all at once before reading, 8 MiB would fill both
    directions' buffers and hang."""
    data = bytes(range(256)) * (8 << 12)
    proc = start("cat")
    proc.send(data)
    assert proc.read_all() == data
    assert proc.wait() == 0


def test_a_flood_on_stderr_does_not_stall_stdout(start: Start) -> None:
    code, out, err = start("head -c 4000000 /dev/zero >&2; echo done").capture()
    assert (code, out, len(err)) == (0, b"done\n", 4_000_000)


def test_read_until_returns_what_came_before_the_marker_and_waits_no_longer(
    start: Start,
) -> None:
    """The command stays alive after the marker (as sync's listing session waits for its
    tar): read_until must return without waiting for more."""
    proc = start("printf 'a b c\\n--end--'; cat >/dev/null; echo after")
    began = time.monotonic()
    assert proc.read_until(b"--end--") == b"a b c\n"
    assert time.monotonic() - began < 5
    proc.close_stdin()
    assert proc.finish() == (0, "")
    assert proc.read_until(b"never") is None  # stdout is over


def test_a_silent_command_is_ended_by_the_stall_watch(start: Start) -> None:
    proc = start("sleep 60")
    proc.watch_for_stall(1.0)
    began = time.monotonic()
    assert proc.read_all() == b""
    assert proc.stalled
    assert time.monotonic() - began < 10
    assert proc.stop(1.0)[0] != 0


def test_stop_gives_up_on_a_command_that_does_not_end(start: Start) -> None:
    proc = start("sleep 60")
    began = time.monotonic()
    code, _ = proc.stop(0.5)
    assert code != 0
    assert time.monotonic() - began < 10


def test_writing_to_a_command_that_is_gone_is_an_ssh_error(start: Start) -> None:
    proc = start("exit 0")
    assert proc.wait() == 0
    with pytest.raises(SshError):
        for _ in range(64):  # the first writes may still be buffered
            proc.write(b"x" * 65536)


def test_a_channel_process_interleaves_both_streams_when_asked(conn: Connection) -> None:
    proc = conn.start("echo one; echo two >&2; echo three", interleaved=True)
    assert isinstance(proc, ChannelProcess)
    try:
        proc.close_stdin()
        got: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 10
        while not proc.drained and time.monotonic() < deadline:
            got += proc.poll(0.1)
        assert b"".join(d for s, d in got if s == 0) == b"one\nthree\n"
        assert b"".join(d for s, d in got if s == 1) == b"two\n"
        assert proc.wait() == 0
    finally:
        proc.close()
