"""How a pull uses the link: how many tar streams, which files each one carries, whether they
are compressed, and the remote tar each runs.

One SSH channel moves at most one window per round trip: OpenSSH's 2 MiB window allows about
26 MB/s over an 80 ms round trip and 10 MB/s over 200 ms, whatever the link could carry
(bench/pull_bench.py through `--link far` measured 8 MB/s on a 12.5 MB/s link). Where the
round trip is long and there is much to fetch, the files are dealt to a few streams, each its
own ssh client (its own TCP connection and window). On a LAN one stream already runs at disk
or CPU speed, and more would only compete for the cores, so a short round trip keeps one.

A stream carries whole files (each is still one tar member, checked as before), so the gain
needs several files; one huge file goes in one stream.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from typing import TypeVar

from remote.listing import Entry
from remote.ssh import Connection, ssh_errors

MAX_STREAMS = 4
MIN_STREAM_BYTES = 16 << 20
"""Below this much per stream the extra logins (4 round trips each) cost more than they gain."""
PARALLEL_RTT_S = 0.02
"""A round trip at least this long may need streams: at 20 ms one stream tops out near 100 MB/s
(a LAN's round trip is well under a millisecond)."""
COMPRESS_MIN_BYTES = MIN_STREAM_BYTES
"""Below this the bytes cross a long link in about a second anyway, less than the round trips
that timing it costs; such a pull is not compressed."""
GZIP_MODE = b"gz\n"
RAW_MODE = b"-\n"
PINGS = 3
"""At most this many round trips are timed, the shortest kept: a busy machine (the early ssh
client logging in beside us) can delay one answer by several milliseconds."""

E = TypeVar("E", bound=Entry)


def stream_count(sizes: list[int], rtt_s: float | None) -> int:
    """Streams worth opening for files of these sizes over this round trip (None: unknown)."""
    if rtt_s is None or rtt_s < PARALLEL_RTT_S:
        return 1
    by_bytes = sum(sizes) // MIN_STREAM_BYTES
    return max(1, min(MAX_STREAMS, len(sizes), by_bytes))


def deal(wanted: Mapping[str, E], streams: int) -> list[dict[str, E]]:
    """The files in `streams` groups of about equal bytes (largest first, each to the lightest
    group); no group is empty, and each keeps the listing's order."""
    streams = max(1, min(streams, len(wanted)))
    loads = [0] * streams
    owner: dict[str, int] = {}
    for rel in sorted(wanted, key=lambda r: wanted[r].size, reverse=True):
        lightest = loads.index(min(loads))
        owner[rel] = lightest
        loads[lightest] += wanted[rel].size
    groups: list[dict[str, E]] = [{} for _ in range(streams)]
    for rel, entry in wanted.items():
        groups[owner[rel]][rel] = entry
    return [g for g in groups if g]


def round_trip(conn: Connection) -> float:
    """The round trip over the open connection, in seconds: a global request sshd answers at
    once (it declines the name), timed up to PINGS times until one is short enough for a LAN;
    only asked when a pull has enough bytes to care."""
    t = conn.target
    shortest = float("inf")
    with ssh_errors(t.host, t.port):
        for _ in range(PINGS):
            start = time.monotonic()
            conn.transport.global_request("vast-gpu-rtt@vast-gpu", wait=True)
            shortest = min(shortest, time.monotonic() - start)
            if shortest < PARALLEL_RTT_S:
                break
    return shortest


def compresses(rtt_s: float | None) -> bool:
    """Whether a pull compresses: when the round trip says the bytes cross a real link
    (PARALLEL_RTT_S, the same line as for streams), where the link, not the CPU, is the limit;
    never on a LAN or loopback, where gzip would be the slowest part (docs/benchmarks.md)."""
    return rtt_s is not None and rtt_s >= PARALLEL_RTT_S


def mode_line(compress: bool) -> bytes:
    """The first line the remote tar command reads on stdin, before the names."""
    return GZIP_MODE if compress else RAW_MODE


def tar_command(remote_dir: str) -> str:
    """GNU tar reading NUL-separated names on stdin; `./` before each name keeps a name that
    starts with `-` from reading as an option; no recursion, so only the names we asked for;
    --hard-dereference sends each name of a hard-linked file as a file of its own (a link
    member would be refused, losing the second name). 128 KiB records (-b 256) instead of
    10 KiB: measured a quarter faster through ssh.

    The names follow one mode line (mode_line()): ``gz`` has tar compress with ``gzip -1``
    when the instance has gzip (tar's own exit code still says how the archive went); the
    local side tells a gzip stream by its magic bytes (remote/inflate.py), so an instance
    without gzip sends plain tar and nothing breaks."""
    return ("IFS= read -r mode; set --; "
            'if [ "$mode" = gz ] && command -v gzip >/dev/null 2>&1; then '
            "set -- '--use-compress-program=gzip -1'; fi; "
            f'exec tar -b 256 -c -f - "$@" -C {shlex.quote(remote_dir)} --hard-dereference '
            "--no-recursion --null -T -")
