"""remote.pullstreams: how many streams a pull opens and which files each carries (pure), and a
pull held to several streams against a vastsim instance's real sshd."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from remote.listing import Entry
from remote.pull import pull
from remote.pullstreams import MAX_STREAMS, MIN_STREAM_BYTES, deal, stream_count
from remote.ssh import Connection, Target

MIB = 1 << 20


def entries(*sizes: int) -> dict[str, Entry]:
    return {f"f{i}": Entry(f"f{i}", "f", size, 0.0, 0o644) for i, size in enumerate(sizes)}


@pytest.mark.parametrize(("sizes", "rtt", "want"), [
    ([64 * MIB] * 4, None, 1),  # round trip unknown
    ([64 * MIB] * 4, 0.0002, 1),  # a LAN: one stream already runs at disk speed
    ([64 * MIB] * 4, 0.012, 1),  # a busy LAN, or a near host: one stream does 100+ MB/s
    ([64 * MIB] * 4, 0.08, 4),
    ([64 * MIB] * 9, 0.2, MAX_STREAMS),
    ([1024 * MIB], 0.2, 1),  # one file: whole files only
    ([4 * MIB] * 10, 0.2, 2),  # 40 MiB: two streams' worth
    ([MIN_STREAM_BYTES - 1, 1], 0.2, 1),
])
def test_stream_count(sizes: list[int], rtt: float | None, want: int) -> None:
    assert stream_count(sizes, rtt) == want


def test_deal_balances_bytes_and_keeps_each_file_once_in_listing_order() -> None:
    wanted = entries(50, 10, 40, 30, 20, 10, 5)
    groups = deal(wanted, 3)
    assert len(groups) == 3
    assert sorted(rel for g in groups for rel in g) == sorted(wanted)
    loads = [sum(e.size for e in g.values()) for g in groups]
    assert max(loads) - min(loads) <= 10, loads
    order = list(wanted)
    for group in groups:
        assert list(group) == sorted(group, key=order.index)


def test_deal_never_makes_an_empty_group() -> None:
    assert [list(g) for g in deal(entries(7, 3), 4)] == [["f0"], ["f1"]]
    assert deal(entries(1), 1) == [entries(1)]


TREE = """
set -e
mkdir -p /work/out/d /work/out/e
for i in 1 2 3 4 5; do head -c $((i * 300000)) /dev/urandom > /work/out/d/big$i.bin; done
for i in $(seq 1 40); do head -c 3000 /dev/urandom > /work/out/e/s$i; done
"""


def sums(conn: Connection) -> dict[str, str]:
    out = conn.run("cd /work/out && find . -type f -exec sha256sum {} +").stdout
    return {line.split(None, 1)[1][2:]: line.split()[0] for line in out.splitlines()}


@pytest.mark.sshd
def test_a_pull_over_three_streams_brings_every_file_once_and_intact(
    target: Target, tmp_path: Path,
) -> None:
    dest = tmp_path / "pulled"
    with Connection(target) as conn:
        conn.run(TREE)
        want = sums(conn)
        log = io.StringIO()
        result = pull(conn, "/work/out", local_dir=dest, log=log, via="ssh", streams=3)
        assert (result.via, result.streams) == ("ssh", 3)
        assert sorted(result.fetched) == sorted(want) and len(result.fetched) == 45
        assert result.nbytes == sum(300000 * i for i in range(1, 6)) + 40 * 3000
        have = {str(p.relative_to(dest)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")}
        assert have == want
        assert "pull: 45 files" in log.getvalue()
        assert list(dest.rglob("*pull-part*")) == []
        again = pull(conn, "/work/out", local_dir=dest, log=io.StringIO(), streams=3)
        assert (again.fetched, again.streams, again.unchanged) == ([], 0, 45)
