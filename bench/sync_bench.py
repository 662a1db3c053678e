"""How fast `inv sync` is next to plain `rsync -a` over the same sshd.

Run: ``.venv/bin/python -m bench.sync_bench [--files 10000] [--runs 3]``. It starts a vastsim,
rents one instance, writes a git work tree of small files (1-4 KB, nested dirs), and times,
for each of our methods and for ``rsync -a`` (same ssh options), a first sync into an empty
dir, a resync with nothing changed, and a resync after one file changed. Our times include
opening the paramiko connection, as rsync's include starting ssh. The median of the runs is
printed with the ratio ours/rsync.
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
from remote.openssh import rsync_rsh
from remote.ssh import Connection, Target
from remote.sync import sync
from vastsim.testing import VastSim

METHODS = ("auto", "tar-ssh", "tar-paramiko", "rsync")
SCENARIOS = ("first sync", "no change", "one changed")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
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
        with VastSim(work / "sim") as sim, BenchInstance(sim, key, "sync") as inst:
            target = inst.target(work / "known_hosts")
            with Connection(target) as conn:  # pins the host key for ssh and rsync
                conn.run("true")
            table = run_bench(target, src, made, args.runs)
    print_table(table, args.files, args.runs)


def run_bench(target: Target, src: Path, made: list[Path],
              runs: int) -> dict[str, dict[str, float]]:
    times: dict[str, dict[str, list[float]]] = {
        m: {s: [] for s in SCENARIOS} for m in (*METHODS, "rsync -a")}
    dest = {m: f"/app/bench-{m.replace(' ', '')}" for m in times}
    rsync_cmd = ["rsync", "-a", "--exclude=.git", "-e", rsync_rsh(target)]

    def ours(method: str) -> None:
        with Connection(target) as conn:
            sync(conn, src, dest[method], method=method, progress=False)

    def baseline() -> None:
        subprocess.run([*rsync_cmd, f"{src}/", f"{target.user}@{target.host}:{dest['rsync -a']}/"],
                       check=True)

    def run_one(name: str) -> float:
        return timed(baseline) if name == "rsync -a" else timed(lambda: ours(name))

    clock = int(time.time())
    for run in range(runs):
        with Connection(target) as conn:  # flushed, so no deletion slows the next writes
            conn.run("rm -rf " + " ".join(shlex.quote(d) for d in dest.values()) + "; sync")
        names = list(times)
        order = names[run % len(names):] + names[: run % len(names)]  # no one always first
        for name in order:
            times[name]["first sync"].append(run_one(name))
        for name in order:
            times[name]["no change"].append(run_one(name))
        changed = made[len(made) // 2 + run]
        changed.write_bytes(os.urandom(2000))
        clock += 10
        os.utime(changed, (clock, clock))
        for name in order:
            times[name]["one changed"].append(run_one(name))
        print(f"run {run + 1}/{runs} done", file=sys.stderr)
    return {m: {s: statistics.median(v) for s, v in per.items()} for m, per in times.items()}


def print_table(table: dict[str, dict[str, float]], files: int, runs: int) -> None:
    base = table["rsync -a"]
    print(f"\n{files} files of 1-4 KB, median of {runs} runs, seconds (ratio to rsync -a)")
    print(f"{'method':<14}" + "".join(f"{s:>22}" for s in SCENARIOS))
    for name, per in table.items():
        cells = "".join(f"{per[s]:>12.3f} ({per[s] / base[s]:>5.2f}x)" for s in SCENARIOS)
        print(f"{name:<14}{cells}")


if __name__ == "__main__":
    main()
