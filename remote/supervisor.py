"""The instance-side supervisor of a batch: a POSIX sh script that no SSH channel owns.

`start` uploads a batch directory and launches `supervisor.sh` with setsid + nohup, so a
dropped connection, a closed laptop or Ctrl-C on the local side's *connection* cannot end it;
only `stop` (TERM to its process group and session, a grace, then KILL) or the watchdog can.

Where: `/tmp/vast-gpu/batches/<job>/` (BATCHES_DIR), next to the watchdog's own files and outside
workDir, so `inv pull` never sees it: the logs come home through attach (remote/detached.py),
into `work_remote/<job>/logs/` as before. The watchdog's installer wipes /tmp/vast-gpu at
boot: a reboot ends the supervisor anyway, and the local logs stay. Inside it: `tasks.json`
(the lines, for resume and status), `names` (line k: task k's log name, NN-slug.log),
`tasks/K.sh` (task k's script: cd appDir, `./run-direct <line>`, run by the login shell as
sshd would), one log per task (stdout and stderr together, byte for byte), `pid`, and
`state`, rewritten atomically (tmp + mv) at every step::

    batch JOB / mode attached|detached / pid P / total N / started EPOCH / status S
    current K START            while task K runs
    task K RC|- START END      per finished task ("-": stopped before it ended)
    ended EPOCH                once status is done or stopped

The money rule. Attached (`inv run`): the local side holds the watchdog's lease as before, so a
local side that dies lets the lease lapse and the instance is destroyed. Detached (`inv run
--detach`): nobody local is there to renew a lease, so the batch holds the instance alive from
the instance side while it runs: the supervisor's command line carries HOLD_TITLE, which the
watchdog's idle check counts as a session (remote/watchdog.py greps process command lines for
`sshd...: user@`). That works on instances rented before this module existed, and it ends with
the process: once the batch ends, or the supervisor is killed, idleTimeout counts from there;
maxLifetime caps everything, session or not.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from remote.batch import RUNNER, Task
from remote.errors import BatchRunning, NoSuchBatch, TasksChanged
from remote.ssh import Connection
from remote.watchdog import STATE_DIR

BATCHES_DIR = f"{STATE_DIR}/batches"
LAUNCH_WAIT_S = 10
STOP_GRACE_S = 3
COMMAND_TIMEOUT_S = 30.0


def hold_title(job: str) -> str:
    """An argument the watchdog's idle check reads as an SSH session (see the docstring)."""
    return f"sshd-vast-gpu-batch: {job}@detached"


def batch_dir(job: str) -> str:
    return f"{BATCHES_DIR}/{job}"


def log_names(tasks: Sequence[Task]) -> list[str]:
    """NN-slug.log per task, as remote/batch.py names its logs."""
    width = max(2, len(str(len(tasks))))
    return [f"{i:0{width}d}-{t.slug}.log" for i, t in enumerate(tasks, start=1)]


# $1 batch dir, $2 mode, $3 title (only for ps and the watchdog), then the task numbers to run.
# Tasks run in the background and are waited for, so TERM reaches the trap at once.
SUPERVISOR = r"""trap '' HUP
B=$1 M=$2
shift 3
cd "$B" || exit 127
S=${SHELL:-/bin/sh}
n=$(wc -l < names)
R=$(cat keep 2>/dev/null)
now() { date +%s; }
T0=$(now) status=running cur= cs= child=
write() {
  { echo "batch ${B##*/}"; echo "mode $M"; echo "pid $$"; echo "total $((n))"
    echo "started $T0"; echo "status $status"
    [ -n "$cur" ] && echo "current $cur $cs"
    [ -n "$R" ] && printf '%s\n' "$R"
    [ "$status" = running ] || echo "ended $(now)"
  } > state.tmp && mv -f state.tmp state
}
rec() { R="${R:+$R
}task $1 $2 $3 $4"; }
stop() {
  trap '' TERM
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
  [ -n "$cur" ] && rec "$cur" - "$cs" "$(now)"
  cur= status=stopped
  write
  exit 143
}
trap stop TERM
write
echo $$ > pid.new && mv -f pid.new pid
for i in "$@"; do
  f=$(sed -n "${i}p" names)
  cur=$i cs=$(now)
  write
  : > "$f"
  "$S" "tasks/$i.sh" < /dev/null >> "$f" 2>&1 &
  child=$!
  wait "$child"
  rc=$?
  child=
  rec "$i" "$rc" "$cs" "$(now)"
  cur=
  write
done
status=done
write
"""

# $1 batch dir, then the numbers of the tasks to run. Refuses a batch that still runs.
_CHECK = r"""B=$1
if [ -s "$B/pid" ] && kill -0 "$(cat "$B/pid")" 2>/dev/null; then
  echo "$(cat "$B/pid")"; exit 3
fi
exit 0
"""

_LAUNCH = r"""B=$1 M=$2 T=$3
shift 3
cd "$B" || exit 127
rm -f pid
for i in "$@"; do f=$(sed -n "${i}p" names); [ -n "$f" ] && rm -f "$f"; done
command -v setsid >/dev/null && s=setsid || s=
(cd / && exec $s nohup sh "$B/supervisor.sh" "$B" "$M" "$T" "$@" </dev/null \
  >>"$B/supervisor.log" 2>&1) &
end=$(( $(date +%s) + {wait} ))
while [ ! -s pid ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.05; done
[ -s pid ] && cat pid && exit 0
echo "the supervisor did not start:"; tail -n 20 supervisor.log; exit 4
""".replace("{wait}", str(LAUNCH_WAIT_S))

# $1 batch dir. TERM to the group and session (the supervisor is both leaders), grace, KILL.
_STOP = r"""B=$1
[ -s "$B/pid" ] || exit 0
g=$(cat "$B/pid")
alive() {
  kill -0 -$g 2>/dev/null && return 0
  command -v pgrep >/dev/null && pgrep -s $g >/dev/null
}
sig() {
  kill -$1 -$g 2>/dev/null
  command -v pkill >/dev/null && pkill -$1 -s $g
  true
}
sig TERM
end=$(( $(date +%s) + {grace} ))
while alive && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1; done
alive && sig KILL
exit 0
""".replace("{grace}", str(STOP_GRACE_S))

# Every batch: its state file, then ">> " and the last line of the running (or last) log.
_LIST = r"""for s in {dir}/*/state; do
  [ -f "$s" ] || continue
  b=${s%/state}
  echo "== ${b##*/}"; cat "$s"
  p=$(sed -n 's/^pid //p' "$s")
  st=$(sed -n 's/^status //p' "$s")
  [ "$st" = running ] && ! kill -0 "$p" 2>/dev/null && echo "status lost"
  k=$(sed -n 's/^current \([0-9]*\) .*/\1/p' "$s")
  [ -n "$k" ] || k=$(sed -n 's/^task \([0-9]*\) .*/\1/p' "$s" | tail -n 1)
  [ -n "$k" ] && f=$(sed -n "${k}p" "$b/names") && [ -f "$b/$f" ] &&
    echo ">> $(tail -n 1 "$b/$f" | tr -d '\r' | cut -c1-200)"
done
exit 0
""".replace("{dir}", BATCHES_DIR)


@dataclass
class TaskRecord:
    index: int
    exit_code: int | None
    """None: stopped before it ended."""
    started: int
    ended: int


@dataclass
class BatchState:
    """What the supervisor's `state` file says."""

    job: str
    mode: str = ""
    pid: int = 0
    total: int = 0
    status: str = ""
    """running, done, stopped; "lost" when it says running but the supervisor is gone."""
    started: int = 0
    ended: int | None = None
    current: tuple[int, int] | None = None
    """(task number, start epoch) while a task runs."""
    records: dict[int, TaskRecord] = field(default_factory=dict)
    last_line: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"

    def describe(self) -> str:
        done = len(self.records)
        if self.current:
            where = f"task {self.current[0]} of {self.total}"
        else:
            where = f"{done} of {self.total} tasks ended"
        failed = sum(1 for r in self.records.values() if r.exit_code != 0)
        bad = f", {failed} failed" if failed else ""
        last = f"; last line: {self.last_line}" if self.last_line else ""
        return f"batch {self.job} ({self.mode}): {self.status}, {where}{bad}{last}"


def parse_state(job: str, text: str) -> BatchState:
    state = BatchState(job)
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        words = rest.split()
        if key == "mode":
            state.mode = rest
        elif key in ("pid", "total", "started") and rest.isdigit():
            setattr(state, key, int(rest))
        elif key == "ended" and rest.isdigit():
            state.ended = int(rest)
        elif key == "status":
            state.status = rest
        elif key == "current" and len(words) == 2:
            state.current = (int(words[0]), int(words[1]))
        elif key == "task" and len(words) == 4:
            code = None if words[1] == "-" else int(words[1])
            rec = TaskRecord(int(words[0]), code, int(words[2]), int(words[3]))
            state.records[rec.index] = rec
        elif key == ">>":
            state.last_line = rest
    return state


def _task_script(task: Task, app_dir: str) -> str:
    """As remote/batch.py runs a task: newlines, not `;`, so a trailing `# comment` is harmless."""
    return f"cd {shlex.quote(app_dir)} || exit 127\n{RUNNER} {task.line}\n"


def _bundle(tasks: Sequence[Task], app_dir: str, keep: str) -> bytes:
    files = {
        "supervisor.sh": SUPERVISOR,
        "tasks.json": json.dumps([{"line": t.line, "line_no": t.line_no} for t in tasks]) + "\n",
        "names": "".join(n + "\n" for n in log_names(tasks)),
        "keep": keep,
    }
    for i, task in enumerate(tasks, start=1):
        files[f"tasks/{i}.sh"] = _task_script(task, app_dir)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sh(script: str, *args: str) -> str:
    """`sh -c SCRIPT sh ARGS...`: the values reach the script as $1.., never as shell text."""
    return " ".join(["sh", "-c", shlex.quote(script), "sh", *(shlex.quote(a) for a in args)])


def check_not_running(conn: Connection, job: str) -> None:
    answer = conn.run(_sh(_CHECK, batch_dir(job)), check=False, timeout=COMMAND_TIMEOUT_S)
    if answer.exit_code == 3:
        raise BatchRunning(job, int(answer.stdout.split()[0]))


def start(
    conn: Connection, job: str, tasks: Sequence[Task], *, app_dir: str, detached: bool,
    run: Sequence[int] | None = None, keep: Sequence[TaskRecord] = (),
) -> int:
    """Upload the batch and launch its supervisor; its pid. `run`: the task numbers to run
    (default all); `keep`: records of tasks a resume does not rerun (their logs stay)."""
    check_not_running(conn, job)
    b = batch_dir(job)
    keep_text = "".join(
        f"task {r.index} {'-' if r.exit_code is None else r.exit_code} {r.started} {r.ended}\n"
        for r in keep)
    fresh = "" if keep else 'rm -rf "$1" && '
    conn.run(_sh(f'{fresh}mkdir -p "$1/tasks" && tar -x -C "$1"', b),
             stdin=_bundle(tasks, app_dir, keep_text), timeout=COMMAND_TIMEOUT_S)
    numbers = [str(i) for i in (run or range(1, len(tasks) + 1))]
    title = hold_title(job) if detached else "attached"
    mode = "detached" if detached else "attached"
    answer = conn.run(_sh(_LAUNCH, b, mode, title, *numbers),
                      timeout=COMMAND_TIMEOUT_S + LAUNCH_WAIT_S)
    return int(answer.stdout.split()[0])


def read_state(conn: Connection, job: str) -> BatchState:
    """The batch's state; NoSuchBatch when the instance has none for this job."""
    for state in list_batches(conn, job):
        return state
    raise NoSuchBatch(job, conn.target.host, conn.target.port)


def read_tasks(conn: Connection, job: str) -> list[Task]:
    answer = conn.run(f"cat {shlex.quote(batch_dir(job))}/tasks.json", check=False,
                      timeout=COMMAND_TIMEOUT_S)
    if answer.exit_code != 0:
        raise NoSuchBatch(job, conn.target.host, conn.target.port)
    return [Task(t["line"], int(t["line_no"])) for t in json.loads(answer.stdout)]


def list_batches(conn: Connection, job: str | None = None) -> list[BatchState]:
    """Every batch on the instance (or just `job`'s), with the last line of its log."""
    script = _LIST if job is None else _LIST.replace(f"{BATCHES_DIR}/*/state",
                                                     f"{batch_dir(job)}/state")
    text = conn.run(script, timeout=COMMAND_TIMEOUT_S).stdout
    states = []
    for chunk in text.split("== ")[1:]:
        name, _, body = chunk.partition("\n")
        states.append(parse_state(name, body))  # a later "status lost" wins
    return states


def stop(conn: Connection, job: str) -> None:
    """TERM the supervisor's group and session (its task too), a grace, then KILL."""
    conn.run(_sh(_STOP, batch_dir(job)), timeout=COMMAND_TIMEOUT_S + STOP_GRACE_S)


# --- starting and resuming, with the local logs ------------------------------------------------


def fresh_logs(logs_dir: Path, tasks: Sequence[Task], numbers: Sequence[int]) -> None:
    """Empty the local copies of the logs of the tasks about to run: their bookmarks."""
    names = log_names(tasks)
    for i in numbers:
        (logs_dir / names[i - 1]).unlink(missing_ok=True)


def start_batch(
    conn: Connection, job: str, tasks: Sequence[Task], *, app_dir: str, logs_dir: Path,
    detached: bool, run: Sequence[int] | None = None, keep: Sequence[TaskRecord] = (),
) -> int:
    """start(), with fresh local logs for the tasks it runs (remote/detached.py streams them)."""
    check_not_running(conn, job)
    numbers = list(run or range(1, len(tasks) + 1))
    logs_dir.mkdir(parents=True, exist_ok=True)
    fresh_logs(logs_dir, tasks, numbers)
    return start(conn, job, tasks, app_dir=app_dir, detached=detached, run=numbers, keep=keep)


@dataclass(frozen=True)
class ResumePlan:
    run: list[int]
    keep: list[TaskRecord]
    """Tasks that ended with exit 0: skipped."""


def plan_resume(conn: Connection, job: str, tasks: Sequence[Task]) -> ResumePlan:
    """The tasks to rerun (all but those that ended with 0); TasksChanged if the list is not
    the batch's, BatchRunning if it still runs."""
    check_not_running(conn, job)
    old = read_tasks(conn, job)
    for i, (was, now) in enumerate(zip_longest(old, tasks), start=1):
        if was is None or now is None or was.line != now.line:
            raise TasksChanged(job, i, was.line if was else None, now.line if now else None)
    state = read_state(conn, job)
    keep = [r for r in state.records.values() if r.exit_code == 0]
    done = {r.index for r in keep}
    return ResumePlan([i for i in range(1, len(tasks) + 1) if i not in done], keep)
