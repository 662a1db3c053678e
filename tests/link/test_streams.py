"""Over a link with a real round trip a pull opens several streams and a sync several upload
channels by themselves, and a reset that breaks all of a pull's streams at once is a PullError
that a rerun completes (Toxiproxy in front of a vastsim sshd)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from bench.link import Link
from remote.errors import PullError
from remote.pull import pull
from remote.ssh import Connection, Target
from remote.sync import sync
from tests.link.test_faults import (
    DEST,
    check_home,
    local_sums,
    pull_setup,
    pull_under_way,
    remote_sums,
)

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
    check_home(home, home / "pulled", want, complete=True)

    direct_dest = tmp_path / "direct"
    with Connection(target) as conn:  # the same bytes over loopback: one stream
        assert pull(conn, "/work/many", local_dir=direct_dest, log=io.StringIO()).streams == 1


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


TREE = """
set -e
rm -rf "$1" && mkdir -p "$1" && cd "$1"
head -c 15728640 /dev/urandom > all
for a in 1 2 3 4 5; do for b in 1 2 3 4 5 6 7 8; do for c in 1 2 3 4 5 6; do
  mkdir -p d$a/e$b/f$c
done; done; done
split -a 3 -b 32768 all piece && rm all
set -- d*/e*/f*
for p in piece*; do mv "$p" "$1/"; shift; [ $# -gt 0 ] || set -- d*/e*/f*; done
"""


def test_a_sync_over_a_long_round_trip_uploads_on_several_channels_and_stays_exact(
    target: Target, link: Link, via_link: Target, tmp_path: Path,
) -> None:
    """15 MiB in 480 files of 240 directories through a 30 ms round trip: the upload goes on
    several channels of the one connection, each directory's files dealt to different ones;
    every file lands intact, the manifest lists them all (a file deleted here is deleted
    there next time), and a resync sends nothing."""
    src = tmp_path / "src"
    subprocess.run(["sh", "-c", TREE, "tree", str(src)], check=True)
    for stream in ("upstream", "downstream"):
        link.toxic("latency", stream=stream, latency=15, jitter=0)
    with Connection(via_link) as conn:
        first = sync(conn, src, DEST, progress=False)
        assert (first.method, first.files_sent, first.streams) == ("tar-paramiko", 480, 3)
        with Connection(target) as direct:
            assert remote_sums(direct, DEST) == local_sums(src)
        next(src.rglob("piece*")).unlink()
        again = sync(conn, src, DEST, progress=False)
        assert (again.files_sent, again.deleted, again.unchanged) == (0, 1, 479)
    with Connection(target) as direct:
        assert remote_sums(direct, DEST) == local_sums(src)
