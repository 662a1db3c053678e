"""A pull through a link with a real round trip opens several streams and compresses by itself,
and a reset that breaks all of them at once is a PullError that a rerun completes (Toxiproxy in
front of a vastsim sshd)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench.link import Link
from remote.errors import PullError
from remote.pull import pull
from remote.ssh import Connection, Target
from tests.link.test_faults import check_home, pull_setup, pull_under_way, remote_sums

pytestmark = [pytest.mark.sshd, pytest.mark.link]

BIG_FILES = """
set -e
mkdir -p /work/many
for i in 1 2 3 4; do head -c 12582912 /dev/urandom > /work/many/chunk$i.bin; done
"""


def test_a_long_round_trip_and_enough_bytes_open_several_streams(
    target: Target, link: Link, via_link: Target, tmp_path: Path,
) -> None:
    with Connection(target) as direct:
        direct.run(BIG_FILES)
        want = remote_sums(direct, "/work/many")
    home = tmp_path / "home"
    home.mkdir()
    (home / "mine.txt").write_text("not the instance's\n")
    for stream in ("upstream", "downstream"):
        link.toxic("latency", stream=stream, latency=15, jitter=0)  # RTT 30 ms
    with Connection(via_link) as conn:
        result = pull(conn, "/work/many", local_dir=home / "pulled", log=io.StringIO())
    assert (result.via, result.streams) == ("ssh", 3), result  # 48 MiB: three streams' worth
    assert result.compressed, result  # a real round trip: the link is what limits
    check_home(home, home / "pulled", want, complete=True)

    direct_dest = tmp_path / "direct"
    with Connection(target) as conn:  # the same bytes over loopback: one stream, no gzip
        direct = pull(conn, "/work/many", local_dir=direct_dest, log=io.StringIO())
    assert (direct.streams, direct.compressed) == (1, False), direct


def test_a_reset_of_every_stream_is_a_pull_error_and_a_rerun_completes(
    target: Target, link: Link, via_link: Target, tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    want, dest = pull_setup(target, home)
    link.toxic("bandwidth", stream="downstream", rate=3000)  # 14 MiB take about 5 s

    join = pull_under_way(via_link, dest, streams=3)
    link.toxic("reset_peer", stream="downstream", timeout=0)
    link.toxic("reset_peer", stream="upstream", timeout=0)
    raised = join()
    assert isinstance(raised, PullError) and "rerun the pull" in str(raised), repr(raised)
    check_home(home, dest, want, complete=False)
    link.clear()
    with Connection(via_link) as conn:
        again = pull(conn, "/work/out", local_dir=dest, log=io.StringIO(), streams=3)
    assert again.fetched and "big.bin" in again.fetched
    check_home(home, dest, want, complete=True)
