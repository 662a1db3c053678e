"""How fast `inv sync` is next to plain `rsync -a`/`rsync -az` and `scp -r` over the same sshd.

Run: ``.venv/bin/python -m bench.sync_bench [--files 10000] [--runs 3] [--link wan]``. It starts
a vastsim, rents one instance, writes a git work tree of small files (1-4 KB, nested dirs), and
times, for each of our methods and for ``rsync -a``, ``rsync -az`` (same ssh options) and,
with ``--scp``, ``scp -r`` (first sync only: it always copies everything), a first sync into
an empty dir, a resync with nothing changed, and a resync after one file changed. Our times
include opening the paramiko connection, as rsync's include starting ssh. The median of the
runs is printed with the ratio to rsync -a.

With ``--link lan|wan|far`` everything goes through one Toxiproxy link in front of the sshd
(bench/link.py), and two more figures come out of the same run: the link's ceiling (a raw
``ssh 'cat >/dev/null'`` of a tar of the tree, the upload direction), and the round trips a
no-change resync costs, estimated as (its time on the link - its time with the toxics off,
measured right after on the same proxy) / the link's RTT. Our channel count (SSH sessions
opened on the paramiko connection, from paramiko's own counter) is printed as well.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.instances import BenchInstance
from bench.link import PROFILES, add_link_option, through
from remote.openssh import rsync_rsh, ssh_argv, ssh_options
from remote.ssh import Connection, Target
from remote.sync import sync
from vastsim.testing import VastSim

METHODS = ("auto", "tar-ssh", "tar-paramiko", "rsync")
BASELINES = ("rsync -a", "rsync -az", "scp -r")
SCENARIOS = ("first sync", "no change", "one changed")
FIRST_ONLY = ("scp -r",)
"""scp has no notion of unchanged: a resync copies everything again, as the first did."""


def make_tree(root: Path, files: int, seed: int = 1) -> list[Path]:
    """``files`` files of 1-4 KB in a three-level tree, committed to a fresh git repo."""
    rng = random.Random(seed)
    made = []
    for i in range(files):
        d = root / f"pkg{i % 20:02d}" / f"mod{i % 7}" / f"sub{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"file{i:05d}.py"
        path.write_bytes(rng.randbytes(rng.randint(1024, 4096)))
        made.append(path)
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=b@b"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tree"], check=True)
    return made


def timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


Times = dict[str, dict[str, float]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scp", action="store_true", help="time scp -r too (first sync only; "
                        "through wan it took 0.6 s per file: OpenSSH's scp waits on each)")
    add_link_option(parser)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        work = Path(tmp)
        key = work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        src = work / "src"
        src.mkdir()
        print(f"making {args.files} files...", file=sys.stderr)
        made = make_tree(src, args.files)
        with (VastSim(work / "sim") as sim, BenchInstance(sim, key, "sync") as inst,
              through(args.link, inst.target(work / "known_hosts"), work) as (target, link)):
            with Connection(target) as conn:  # pins the host key for ssh, rsync and scp
                conn.run("true")
            bench = Bench(target, src, scp=args.scp)
            table = bench.run(made, args.runs)
            print_table(table, bench.channels, args.files, args.runs, args.link)
            if link is not None:  # printed before the teardown, which can fail on its own
                ceiling = bench.ceiling(work, args.runs)
                link.profile("lan")
                print_link(table, bench.no_change(args.runs), ceiling, args.link)


class Bench:
    """Each method's runner, and where each method syncs to."""

    def __init__(self, target: Target, src: Path, *, scp: bool) -> None:
        self.target = target
        self.src = src
        names = [*METHODS, *(b for b in BASELINES if scp or b != "scp -r")]
        self.dest = {m: f"/app/bench-{m.replace(' ', '')}" for m in names}
        self.channels: dict[str, dict[str, int]] = {m: {} for m in METHODS}
        """SSH sessions each of our methods opened on its paramiko connection, per scenario."""
        self.scenario = ""

    def ours(self, method: str) -> None:
        with Connection(self.target) as conn:
            sync(conn, self.src, self.dest[method], method=method, progress=False)
            self.channels[method][self.scenario] = conn.transport._channel_counter

    def baseline(self, name: str) -> None:
        t = self.target
        remote = f"{t.user}@{t.host}:{self.dest[name]}"
        if name == "scp -r":
            tops = sorted(str(p) for p in self.src.iterdir() if p.name != ".git")
            with Connection(t) as conn:
                conn.run(f"mkdir -p {shlex.quote(self.dest[name])}")
            argv = ["scp", "-q", "-r", "-p", *ssh_options(t), "-P", str(t.port), *tops,
                    f"{remote}/"]
        else:
            flags = "-az" if name == "rsync -az" else "-a"
            argv = ["rsync", flags, "--exclude=.git", "-e", rsync_rsh(t), f"{self.src}/",
                    f"{remote}/"]
        subprocess.run(argv, check=True)

    def run_one(self, name: str) -> float:
        if name in METHODS:
            return timed(lambda: self.ours(name))
        return timed(lambda: self.baseline(name))

    def run(self, made: list[Path], runs: int) -> Times:
        times: dict[str, dict[str, list[float]]] = {m: {s: [] for s in SCENARIOS}
                                                    for m in self.dest}
        clock = int(time.time())
        for run in range(runs):
            with Connection(self.target) as conn:  # flushed: no deletion slows the next writes
                conn.run("rm -rf " + " ".join(shlex.quote(d) for d in self.dest.values())
                         + "; sync")
            names = list(times)
            order = names[run % len(names):] + names[: run % len(names)]  # no one always first
            for scenario in SCENARIOS:
                self.scenario = scenario
                if scenario == "one changed":
                    changed = made[len(made) // 2 + run]
                    changed.write_bytes(os.urandom(2000))
                    clock += 10
                    os.utime(changed, (clock, clock))
                for name in order:
                    if scenario == "first sync" or name not in FIRST_ONLY:
                        times[name][scenario].append(self.run_one(name))
            print(f"run {run + 1}/{runs} done", file=sys.stderr)
        return {m: {s: statistics.median(v) for s, v in per.items() if v}
                for m, per in times.items()}

    def no_change(self, runs: int) -> dict[str, float]:
        """A no-change resync per method, median of runs (the trees are in place)."""
        self.scenario = "no change (lan)"
        names = [n for n in self.dest if n not in FIRST_ONLY]
        return {n: statistics.median(self.run_one(n) for _ in range(runs)) for n in names}

    def ceiling(self, work: Path, runs: int) -> tuple[int, float]:
        """Bytes of a tar of the tree and the median time of ``ssh 'cat >/dev/null'`` of it."""
        tarball = work / "tree.tar"
        subprocess.run(["tar", "-cf", str(tarball), "--exclude=.git", "-C", str(self.src), "."],
                       check=True)

        def send() -> None:
            with open(tarball, "rb") as stdin:
                subprocess.run(ssh_argv(self.target, "cat >/dev/null"), stdin=stdin, check=True)

        return tarball.stat().st_size, statistics.median(timed(send) for _ in range(runs))


def print_table(table: Times, channels: dict[str, dict[str, int]], files: int, runs: int,
                link: str | None) -> None:
    base = table["rsync -a"]
    where = f"through the {link} link ({PROFILES[link].describe()})" if link else "direct"
    print(f"\n{files} files of 1-4 KB, {where}, median of {runs} runs, seconds "
          "(ratio to rsync -a)")
    print(f"{'method':<14}" + "".join(f"{s:>22}" for s in SCENARIOS) + "  SSH sessions")
    for name, per in table.items():
        cells = "".join(f"{per[s]:>12.3f} ({per[s] / base[s]:>5.2f}x)" if s in per
                        else f"{'-':>22}" for s in SCENARIOS)
        sessions = "/".join(str(channels[name].get(s, "-")) for s in SCENARIOS) \
            if name in channels else ""
        print(f"{name:<14}{cells}  {sessions}")


def print_link(table: Times, lan: dict[str, float], ceiling: tuple[int, float],
               link: str) -> None:
    nbytes, seconds = ceiling
    rtt = PROFILES[link].rtt_s
    print(f"\nlink ceiling: ssh cat of a {nbytes / 1e6:.1f} MB tar of the tree: {seconds:.3f} s "
          f"({nbytes / seconds / 1e6:.1f} MB/s); first sync of each method as a share of it:")
    for name, per in table.items():
        print(f"  {name:<14}{seconds / per['first sync']:>6.0%}")
    if not rtt:  # `lan`: no latency, so no round trips to count (and no division by zero)
        return
    print(f"\nno-change resync: {link} vs the same proxy without toxics, round trips = "
          f"difference / RTT ({rtt * 1000:.0f} ms)")
    for name, t in lan.items():
        slow = table[name]["no change"]
        print(f"  {name:<14}{slow:>8.3f} s vs {t:.3f} s: {(slow - t) / rtt:>5.1f} round trips")


if __name__ == "__main__":
    main()
