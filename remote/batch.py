"""Run a batch of task lines on the instance: `./run-direct <line>` in the app dir, one by one.

Output streams live, line by line, with a `[2/5 sine] ` prefix (stderr lines `[2/5 sine:err] `);
every task's output goes to `logs_dir/NN-<slug>.log` and its exit code and duration to
`logs_dir/summary.json` (rewritten after each task, so an interrupted batch keeps its record).
A failing task warns and the batch goes on; a summary table ends it. The line goes to the
remote shell as written (`./run-direct <line>`), so quoting, `$VAR` and globs mean there what
they mean in a terminal; the task's stdin is closed.

Ctrl-C must not leave the task running on a machine billed by the hour. sshd makes each session
its own session and process group (session.c calls setsid), so the remote shell's `$$` names
the group; it is written to a pid file first, and on interrupt a second channel sends TERM to
the group (and session), waits a short grace, then KILL. A task that starts its own session
(setsid, start_new_session=True) escapes the group; that is the one thing this cannot stop.
KeyboardInterrupt is re-raised once the task is stopped and the summary written.

A connection that drops mid-task ends the batch with TaskDisconnected (task line, host:port,
log path): without the connection the task's fate on the instance is unknown.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from remote.errors import SshError, TaskDisconnected, TaskFileError
from remote.lines import PrefixedLines
from remote.ssh import ChannelProcess, Connection
from remote.watchdog import hold_lease

RUNNER = "./run-direct"
KILL_GRACE_S = 3.0
PIDFILE_WAIT_S = 3.0
POLL_S = 0.2
SLUG_MAX = 32
# sshd hands the whole command to the login shell as one `-c` argument, and Linux caps one
# argument at 128 KiB (MAX_ARG_STRLEN); keep 1 KiB for the wrapper in _TaskRun.command.
MAX_TASK_BYTES = 128 * 1024 - 1024


@dataclass(frozen=True)
class Task:
    """One task line, kept exactly as written: the remote shell parses it, so the user's quoting
    means there what it means in a terminal."""

    line: str
    line_no: int

    @property
    def slug(self) -> str:
        """A short file- and prefix-safe name: the first word's basename."""
        words = shlex.split(self.line)
        first = words[0].rstrip("/").rsplit("/", 1)[-1] if words else ""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", first).strip("._")[:SLUG_MAX]
        return slug or "task"


@dataclass
class TaskResult:
    task: Task
    index: int
    """1-based position in the batch."""
    exit_code: int | None
    """None when the task did not finish (interrupted, connection lost); -1 for a signal."""
    duration_s: float
    log_path: Path
    status: str
    """"ok", "failed", "interrupted" or "disconnected"."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index, "line": self.task.line, "line_no": self.task.line_no,
            "exit_code": self.exit_code, "duration_s": round(self.duration_s, 3),
            "status": self.status, "log": self.log_path.name,
        }


@dataclass
class BatchResult:
    results: list[TaskResult] = field(default_factory=list)
    logs_dir: Path | None = None
    total: int = 0
    """Tasks in the batch; more than len(results) when it was stopped early."""

    @property
    def failed(self) -> int:
        """Tasks that ran and did not succeed."""
        return sum(1 for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and len(self.results) == self.total


def read_tasks(path: Path) -> list[Task]:
    """The tasks of a file, refused before anything is rented when the file is missing, not
    text, or holds no task (a rent that would run nothing)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TaskFileError(str(path), 0, "", f"cannot be read ({exc.strerror or exc}); "
                                              f"give a text file with one task per line") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskFileError(str(path), 0, "", f"is not UTF-8 text (byte {exc.start}); "
                                              f"give a text file with one task per line") from exc
    if "\0" in text:
        raise TaskFileError(str(path), 0, "", "holds NUL bytes: a binary file, not a tasks file")
    tasks = parse_tasks(text, str(path))
    if not tasks:
        raise TaskFileError(str(path), 0, "", "holds no task (only blank and # lines): "
                                              "add one `./run-direct` argument line per task")
    return tasks


def parse_tasks(text: str, path: str = "<tasks>") -> list[Task]:
    """One task per line; blank lines and lines starting with `#` skipped. Each line must split
    as shell words (balanced quotes), so a typo fails here, naming the line, not on the GPU;
    a line the instance's kernel could not pass as one argument (MAX_TASK_BYTES) too."""
    tasks = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise TaskFileError(path, line_no, line, f"bad shell quoting ({exc})") from exc
        if not words:
            raise TaskFileError(path, line_no, line, "no words in the line")
        _check_length(path, line_no, line)
        tasks.append(Task(line, line_no))
    return tasks


def _check_length(path: str, line_no: int, line: str) -> None:
    size = len(line.encode())
    if size > MAX_TASK_BYTES:
        raise TaskFileError(path, line_no, line[:60] + "...",
                            f"{size} bytes, over the {MAX_TASK_BYTES} a command line may hold "
                            f"on the instance: put the data in a file")


def task_from_argv(argv: Sequence[str]) -> Task:
    """`inv run -- a b c`: one task, its words quoted so the remote shell sees them unchanged."""
    if not argv:
        raise ValueError("task_from_argv: empty argv")
    line = shlex.join(argv)
    _check_length("the task after --", 1, line)
    return Task(line, 1)


def tasks_from_argv(argv: Sequence[str]) -> list[Task]:
    """The words after `--`: one task (`-- sine 440`, `-- speak --text "hi there"`), or, when
    there are several and each is a whole quoted command line (`-- 'sine 440' 'sine 880'`), one
    task per word, as the old script's `-- TASK [TASK...]` took them. A task line given as one
    word is kept as written, so the remote shell parses it like a tasks-file line."""
    if not (len(argv) > 1 and all(any(c.isspace() for c in word) for word in argv)):
        return [task_from_argv(argv)]
    tasks = []
    for i, word in enumerate(argv, start=1):
        where = f"the task after -- (word {i})"
        found = parse_tasks(word, where)
        if len(found) != 1:
            raise TaskFileError(where, 0, "", f"{word!r} holds {len(found)} task lines, not one")
        tasks.append(Task(found[0].line, i))
    return tasks


def run_batch(
    conn: Connection, tasks: Sequence[Task], *, app_dir: str = "/app", logs_dir: Path,
    out: TextIO = sys.stdout, lease: bool = True,
) -> BatchResult:
    """_run_batch while holding the watchdog's lease (remote/watchdog.py), so the instance's
    dead-man switch knows a batch is being minded; killed here, the lease lapses and the
    instance destroys itself."""
    if not lease:
        return _run_batch(conn, tasks, app_dir=app_dir, logs_dir=logs_dir, out=out)
    with hold_lease(conn, out):
        return _run_batch(conn, tasks, app_dir=app_dir, logs_dir=logs_dir, out=out)


def _run_batch(
    conn: Connection, tasks: Sequence[Task], *, app_dir: str, logs_dir: Path, out: TextIO,
) -> BatchResult:
    """Run every task, whatever the others did; see the module docstring for the output, logs,
    and what Ctrl-C and a dropped connection do."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    batch = BatchResult(logs_dir=logs_dir, total=len(tasks))
    width = max(2, len(str(len(tasks))))
    run_id = uuid.uuid4().hex[:12]
    try:
        for index, task in enumerate(tasks, start=1):
            log_path = logs_dir / f"{index:0{width}d}-{task.slug}.log"
            pidfile = f"/tmp/vast-gpu-batch-{run_id}-{index}.pid"
            runner = _TaskRun(conn, task, index, len(tasks), app_dir, pidfile, log_path, out)
            try:
                result = runner.run()
            finally:
                if runner.result is not None:
                    batch.results.append(runner.result)
                    _write_summary(batch)
            if not result.ok:
                how = ("killed by a signal" if result.exit_code == -1
                       else f"exit {result.exit_code}")
                out.write(f"warning: task {index}/{len(tasks)} failed ({how}): {task.line}\n"
                          f"  log: {log_path}\n")
                out.flush()
    except KeyboardInterrupt:
        out.write("\ninterrupted: the remote task was stopped\n")
        print_summary(batch, out)
        raise
    except TaskDisconnected as exc:
        out.write(f"\nerror: {exc}\n")
        print_summary(batch, out)
        raise
    print_summary(batch, out)
    return batch


class _TaskRun:
    """One task's channel: stream, log, and on Ctrl-C stop the remote process group."""

    def __init__(
        self, conn: Connection, task: Task, index: int, total: int, app_dir: str, pidfile: str,
        log_path: Path, out: TextIO,
    ) -> None:
        self.conn = conn
        self.task = task
        self.index = index
        self.pidfile = pidfile
        self.log_path = log_path
        self.out = out
        self.app_dir = app_dir
        tag = f"{index}/{total} {task.slug}"
        self.prefixes = (f"[{tag}] ", f"[{tag}:err] ")
        self.result: TaskResult | None = None

    def command(self) -> str:
        """Record the group id, run the line in app_dir, drop the pid file. Newlines, not `;`,
        separate the steps, so a `# comment` at the end of the user's line stays harmless."""
        pid = shlex.quote(self.pidfile)
        return (
            f"echo $$ > {pid}\n"
            f"cd {shlex.quote(self.app_dir)} || exit 127\n"
            f"{RUNNER} {self.task.line}\n"
            f"rc=$?\nrm -f {pid}\nexit $rc"
        )

    def run(self) -> TaskResult:
        start = time.monotonic()
        self.out.write(f"{self.prefixes[0]}$ {RUNNER} {self.task.line}\n")
        with self.log_path.open("wb") as log:
            lines = _Lines(self.out, log, self.prefixes)
            proc: ChannelProcess | None = None
            try:
                proc = self.conn.start(self.command(), interleaved=True)
                proc.close_stdin()  # the task reads EOF, never our terminal
                self._pump(proc, lines)
                lines.flush()
                code = proc.wait() if self._alive() else proc.exit_status
                if code == -1 and not self._alive():
                    raise SshError(self.conn.target.host, self.conn.target.port,
                                   "connection lost")
            except KeyboardInterrupt:
                lines.flush()
                self.result = self._result(None, start, "interrupted")
                self.stop_remote()
                raise
            except SshError as exc:
                lines.flush()
                self.result = self._result(None, start, "disconnected")
                t = self.conn.target
                raise TaskDisconnected(t.host, t.port, self.task.line, self.log_path,
                                       exc.reason) from exc
            finally:
                if proc is not None:
                    proc.close()
        # code -1: killed by a signal (sshd sent exit-signal)
        self.result = self._result(code, start, "ok" if code == 0 else "failed")
        return self.result

    def _alive(self) -> bool:
        transport = self.conn.client.get_transport()
        return transport is not None and transport.is_active()

    def _result(self, exit_code: int | None, start: float, status: str) -> TaskResult:
        return TaskResult(
            self.task, self.index, exit_code, time.monotonic() - start, self.log_path, status
        )

    def _pump(self, proc: ChannelProcess, lines: _Lines) -> None:
        """Copy both streams until EOF (sshd sends it once every writer closed the pipes). A
        poll with a timeout keeps Ctrl-C responsive and lets us notice a dead transport."""
        while True:
            for stream, data in proc.poll(POLL_S):
                lines.feed(stream, data)
            if proc.drained:
                return

    def stop_remote(self) -> None:
        """TERM the task's process group and session, a short grace, then KILL; over a fresh
        channel on the same connection. Waits a moment for the pid file: Ctrl-C can land
        between the exec request and the shell writing it."""
        pid = shlex.quote(self.pidfile)
        script = f"""
end=$(( $(date +%s) + {int(PIDFILE_WAIT_S)} ))
while [ ! -s {pid} ] && [ $(date +%s) -lt $end ]; do sleep 0.05; done
[ -s {pid} ] || exit 0
g=$(cat {pid})
alive() {{
  kill -0 -$g 2>/dev/null && return 0
  command -v pgrep >/dev/null && pgrep -s $g >/dev/null
}}
sig() {{
  kill -$1 -$g 2>/dev/null
  command -v pkill >/dev/null && pkill -$1 -s $g
  true
}}
sig TERM
end=$(( $(date +%s) + {int(KILL_GRACE_S)} ))
while alive && [ $(date +%s) -lt $end ]; do sleep 0.1; done
alive && sig KILL
rm -f {pid}
exit 0
"""
        try:
            self.conn.run(script, check=False, timeout=PIDFILE_WAIT_S + KILL_GRACE_S + 15)
        except SshError as exc:
            self.out.write(f"warning: could not stop the remote task ({exc}); it may still run\n")


class _Lines:
    """Two byte streams as prefixed lines on `out` (remote/lines.py); the log gets the bytes
    exactly as they came (stdout and stderr interleaved by arrival), binary output included."""

    def __init__(self, out: TextIO, log: BinaryIO, prefixes: tuple[str, str]) -> None:
        self.log = log
        self._shown = tuple(PrefixedLines(out.write, out.flush, p) for p in prefixes)

    def feed(self, stream: int, data: bytes) -> None:
        self.log.write(data)
        self._shown[stream].feed(data)

    def flush(self) -> None:
        for shown in self._shown:
            shown.finish()


def _write_summary(batch: BatchResult) -> None:
    assert batch.logs_dir is not None
    data = {"total": batch.total, "failed": batch.failed,
            "tasks": [r.to_json() for r in batch.results]}
    tmp = batch.logs_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(batch.logs_dir / "summary.json")


def print_summary(batch: BatchResult, out: TextIO) -> None:
    """A table: task, exit code, duration, status; then the counts."""
    rows = [("#", "task", "exit", "time", "status")]
    for r in batch.results:
        code = "-" if r.exit_code is None else str(r.exit_code)
        rows.append((str(r.index), _clip(r.task.line, 50), code, f"{r.duration_s:.1f}s", r.status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out.write("\n")
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    not_run = batch.total - len(batch.results)
    tail = f", {not_run} not run" if not_run else ""
    out.write(f"{len(batch.results) - batch.failed} ok, {batch.failed} failed{tail}; "
              f"logs in {batch.logs_dir}\n")
    out.flush()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
