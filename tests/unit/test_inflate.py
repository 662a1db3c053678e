"""remote.inflate: a pull stream told gzip or plain by its first bytes, read back whole."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from remote.inflate import Inflated, Prefixed, open_stream

DATA = os.urandom(30_000) + b"text that compresses well\n" * 4_000


class Trickle:
    """A stream with only read(), answering at most `step` bytes a call, as a pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step = data, step

    def read(self, n: int = -1) -> bytes:
        n = self._step if n < 0 else min(n, self._step)
        out, self._data = self._data[:n], self._data[n:]
        return out


def read_all(stream: Inflated | Prefixed, size: int, into: bool) -> bytes:
    out = bytearray()
    buffer = bytearray(size)
    while True:
        if into:
            n = stream.readinto(memoryview(buffer))
            chunk = bytes(buffer[:n])
        else:
            chunk = stream.read(size)
        if not chunk:
            return bytes(out)
        out.extend(chunk)


@pytest.mark.parametrize("step", [1, 7, 65536])
@pytest.mark.parametrize("into", [False, True])
def test_a_gzip_stream_is_inflated_whatever_the_read_sizes(step: int, into: bool) -> None:
    stream = open_stream(Trickle(gzip.compress(DATA, 1), step))  # type: ignore[arg-type]
    assert isinstance(stream, Inflated)
    assert read_all(stream, 4096, into) == DATA
    assert stream.wire_bytes == len(gzip.compress(DATA, 1)) < len(DATA)


@pytest.mark.parametrize("into", [False, True])
def test_a_plain_stream_comes_back_as_it_was(into: bool) -> None:
    raw = b"./a.txt" + DATA
    stream = open_stream(Trickle(raw, 3))  # type: ignore[arg-type]
    assert isinstance(stream, Prefixed)
    assert read_all(stream, 1, into)[:20] == raw[:20]
    stream = open_stream(io.BytesIO(raw))
    assert read_all(stream, 65536, into) == raw


def test_a_stream_shorter_than_the_magic_is_plain_and_empty_after() -> None:
    stream = open_stream(io.BytesIO(b"\x1f"))
    assert stream.read(10) == b"\x1f" and stream.read(10) == b""


def test_a_gzip_stream_cut_short_is_an_eof_error() -> None:
    packed = gzip.compress(DATA, 1)
    stream = open_stream(io.BytesIO(packed[: len(packed) // 2]))
    with pytest.raises(EOFError, match="cut short after"):
        read_all(stream, 65536, False)


def test_a_corrupt_gzip_stream_is_a_read_error() -> None:
    packed = bytearray(gzip.compress(DATA, 1))
    packed[40:80] = bytes(40)
    stream = open_stream(io.BytesIO(bytes(packed)))
    with pytest.raises(tarfile.ReadError, match="corrupt"):
        read_all(stream, 65536, False)
