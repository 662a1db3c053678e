"""How fast `inv pull` is next to `rsync -a` and `scp -r` over the same sshd, on the same data.

Run: ``.venv/bin/python -m bench.pull_bench [--mb 1024] [--big-files 1] [--small 200]
[--data random|text] [--runs 1] [--link wan] [--no-scp]``. It starts a vastsim, rents one
instance, fills its /work with big data (``--mb`` MiB in ``--big-files`` files) plus small
files, then for each method pulls /work into an empty local dir and times it: our pull (system
ssh with as many streams and the compression it chooses, the same held to one stream, with
gzip forced on and off, and the paramiko fallback), ``rsync -a``
and ``scp -r`` with the same ssh options, and a raw ``ssh cat`` of the big data as the limit of
one stream over the link. Every time includes
starting the connection (our paramiko connect as well as ssh's). Dirty pages are flushed before
each timing and the order of the methods rotates from run to run. The median of the runs is
printed with MB/s and the ratio to rsync. Local copies are deleted after each run; the instance
and vastsim at the end. With ``--link lan|wan|far`` every method (the limit too) goes through
one Toxiproxy link with that profile in front of the sshd (bench/link.py); /work is filled
directly.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.instances import BenchInstance
from bench.link import PROFILES, add_link_option, through
from remote.openssh import rsync_rsh, ssh_argv, ssh_options
from remote.pull import pull
from remote.ssh import Connection, Target
from vastsim.testing import VastSim

MB = 1_000_000


DATA = {
    "random": "head -c {each} /dev/urandom",
    "text": "od -An -tu2 -v /dev/urandom | head -c {each}",
}
"""What the big files hold: random bytes (nothing compresses them: model weights, audio), or
numbers as text (a CSV or a log: gzip -1 makes them about a third)."""


def fill_work(t: Target, mb: int, files: int, small: int, data: str = "random") -> int:
    """`mb` MiB of `data` in `files` files, `small` 4 KB files in 10 dirs; total bytes."""
    each = mb * 1024 * 1024 // files
    make = DATA[data].format(each=each)
    with Connection(t) as conn:
        conn.run(f"for i in $(seq 1 {files}); do {make} > /work/big$i.bin; "
                 "done && cd /work && "
                 f"for i in $(seq 1 {small}); do d=small/d$((i % 10)); mkdir -p $d; "
                 "head -c 4096 /dev/urandom > $d/f$i; done")
        return int(conn.run("du -sb --apparent-size /work").stdout.split()[0])


def methods(t: Target) -> dict[str, Callable[[Path], None]]:
    rsh = rsync_rsh(t)
    remote = f"{t.user}@{t.host}:/work"

    def ours(via: str, streams: int | None = None, compress: bool | None = None
             ) -> Callable[[Path], None]:
        def run(dest: Path) -> None:
            with Connection(t) as conn:
                result = pull(conn, local_dir=dest, via=via, log=io.StringIO(), streams=streams,
                              compress=compress)
            assert result.via == via and not result.refused, result
            assert compress is None or result.compressed == compress, result
            name = via if streams is None else f"{via}, {streams}"
            used[name + {None: "", True: ", gzip", False: ", no gzip"}[compress]] = (
                result.streams, result.compressed)
        return run

    def command(argv: list[str], stdout: Path | None = None) -> Callable[[Path], None]:
        def run(dest: Path) -> None:
            dest.mkdir(parents=True, exist_ok=True)
            with open(stdout or "/dev/null", "wb") as out:
                subprocess.run([a.replace("DEST", str(dest)) for a in argv], check=True,
                               stdout=out)
        return run

    def cat(dest: Path) -> None:
        command(ssh_argv(t, "cat /work/big*.bin"), dest / "big.bin")(dest)

    return {
        "ours (ssh)": ours("ssh"),
        "ours (ssh, 1 stream)": ours("ssh", 1),
        "ours (ssh, gzip)": ours("ssh", compress=True),
        "ours (ssh, no gzip)": ours("ssh", compress=False),
        "ours (paramiko)": ours("paramiko"),
        "rsync -a": command(["rsync", "-a", "-e", rsh, f"{remote}/", "DEST/"]),
        "rsync -az": command(["rsync", "-az", "-e", rsh, f"{remote}/", "DEST/"]),
        "scp -r": command(["scp", "-q", "-r", "-p", *ssh_options(t), "-P", str(t.port),
                           f"{remote}/.", "DEST/"]),
        "ssh cat big*.bin (limit)": cat,
    }


used: dict[str, tuple[int, bool]] = {}
"""Streams each of our methods used in its last run, and whether they were compressed."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="size of the big data, MiB")
    parser.add_argument("--big-files", type=int, default=1, help="files the big data is in")
    parser.add_argument("--small", type=int, default=200, help="number of 4 KB files")
    parser.add_argument("--data", choices=sorted(DATA), default="random",
                        help="what the big files hold (text compresses, random does not)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-scp", action="store_true",
                        help="leave scp -r out (it waits a round trip or more on every file)")
    add_link_option(parser)
    args = parser.parse_args()
    need = 3 * args.mb * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"need about {need / MB:.0f} MB free in {work}, have {free / MB:.0f}")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    try:
        with (VastSim(work / "sim") as sim,
              BenchInstance(sim, key, "pull", disk=60) as inst,
              through(args.link, inst.target(work / "known_hosts"), work) as (t, _link)):
            total = fill_work(inst.target(work / "known_hosts"), args.mb, args.big_files,
                              args.small, args.data)
            with Connection(t) as conn:  # pins the link's host:port for ssh, rsync and scp
                conn.run("true")
            where = f"the {args.link} link: {PROFILES[args.link].describe()}" if args.link \
                else "direct"
            print(f"/work: {total / MB:.0f} MB ({args.mb} MiB of {args.data} in "
                  f"{args.big_files} file(s) + "
                  f"{args.small} small files); {args.runs} run(s) each; sshd {t.host}:{t.port} "
                  f"({where})")
            runners = methods(t)
            if args.no_scp:
                del runners["scp -r"]
            times: dict[str, list[float]] = {name: [] for name in runners}
            order = list(runners)
            for i in range(args.runs):
                for name in order[i % len(order):] + order[: i % len(order)]:
                    os.sync()  # no method pays for the writeback of the one before
                    dest = work / "dest"
                    start = time.monotonic()
                    runners[name](dest)
                    times[name].append(time.monotonic() - start)
                    shutil.rmtree(dest)
            report(times, total, args.mb * 1024 * 1024)  # before the teardown, which can fail
            print("streams used: " + ", ".join(
                f"{k} {n}{' gzip' if z else ''}" for k, (n, z) in used.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(times: dict[str, list[float]], total: int, big: int) -> None:
    rsync = statistics.median(times["rsync -a"])
    rsync_rate = total / rsync
    print(f"{'method':<26}{'seconds':>9}{'MB/s':>9}{'vs rsync':>10}")
    for name, runs in times.items():
        seconds = statistics.median(runs)
        nbytes = big if "cat" in name else total
        rate = nbytes / seconds
        print(f"{name:<26}{seconds:>9.2f}{rate / MB:>9.0f}{rate / rsync_rate:>9.2f}x")


if __name__ == "__main__":
    main()
