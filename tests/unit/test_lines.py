"""remote/lines.py: task output split into lines the same whatever the chunking."""

from __future__ import annotations

import io

import pytest

from remote.lines import LineSplitter, PrefixedLines

TEXT = b"one\ntwo\r\nthree\rprogress 50%\rprogress 100%\n\nlast-no-newline"
WANT = [b"one", b"two", b"three", b"progress 50%", b"progress 100%", b""]


def split_in(chunks: list[bytes]) -> tuple[list[bytes], bytes]:
    s = LineSplitter()
    lines = [line for chunk in chunks for line in s.feed(chunk)]
    return lines, s.rest()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, len(TEXT)])
def test_the_lines_do_not_depend_on_how_the_bytes_were_chunked(size: int) -> None:
    chunks = [TEXT[i:i + size] for i in range(0, len(TEXT), size)]
    assert split_in(chunks) == (WANT, b"last-no-newline")


def test_a_crlf_split_across_chunks_is_one_line_end() -> None:
    assert split_in([b"a\r", b"\nb\r", b"", b"\n"]) == ([b"a", b"b"], b"")


def test_a_long_line_in_many_chunks_comes_out_whole() -> None:
    chunks = [bytes([65 + i % 26]) * 1000 for i in range(500)]
    lines, rest = split_in([*chunks, b"\n"])
    assert lines == [b"".join(chunks)] and rest == b""


def test_a_line_left_open_by_an_earlier_stream_is_finished_by_the_next() -> None:
    out = io.StringIO()
    shown = PrefixedLines(out.write, out.flush, "[1/1 t] ", partial=b"half ")
    shown.feed(b"line\nnext")
    shown.finish()
    assert out.getvalue() == "[1/1 t] half line\n[1/1 t] next\n"
