"""How fast task output is turned into prefixed lines: one long line against short lines.

Run: ``.venv/bin/python -m bench.output_bench [--mb 50] [--mb 500]``. It feeds remote/batch.py's
line path (the log write and remote/lines.py's splitter, the terminal side to /dev/null) 64 KiB
chunks, as paramiko hands them over, of N MB on one line and of N MB in 80-byte lines. Linear
means the two take about the same time and 10x the bytes take about 10x the time; before this
splitter one 50 MB line took 137 s (the attack in issue 11).
"""

from __future__ import annotations

import argparse
import io
import os
import time

from remote.batch import _Lines

CHUNK = 64 * 1024
MB = 1_000_000


def run(total: int, line_len: int | None) -> float:
    block = (b"x" * (line_len - 1) + b"\n") if line_len else b"x"
    data = (block * (CHUNK // len(block) + 1))[:CHUNK]
    with open(os.devnull, "w") as out, io.BytesIO() as log:
        lines = _Lines(out, log, ("[1/1 t] ", "[1/1 t:err] "))
        start = time.monotonic()
        for _ in range(total // CHUNK):
            lines.feed(0, data)
        lines.flush()
        return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, action="append", help="sizes in MB (default 50)")
    sizes = parser.parse_args().mb or [50]
    print("| MB | one line (s) | 80-byte lines (s) | one line MB/s |")
    print("|---|---|---|---|")
    for mb in sizes:
        one, short = run(mb * MB, None), run(mb * MB, 80)
        print(f"| {mb} | {one:.2f} | {short:.2f} | {mb / one:.0f} |")


if __name__ == "__main__":
    main()
