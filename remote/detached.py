"""The local side of a supervised batch (remote/supervisor.py): follow its logs, reattach.

The local copy of each task's log is the bookmark: a stream asks the instance for task k from
byte len(local log k) on, and appends what comes, so a reconnect (or a later `inv attach` in a
new process) never repeats or loses a byte. One channel runs FOLLOW, which sends frames::

    D K OFFSET N\\n + N bytes     task K's log from OFFSET
    T task K RC START END        task K ended (RC "-": stopped)
    H                            heartbeat, every HEARTBEAT_S while nothing happens
    E / L K                      every task ended / the supervisor is gone before task K ended

A cut stream (channel closed, transport dead, or silent past SILENCE_S) is reconnected against
a deadline; the stream resumes where the local logs end and says "reconnected after N s". Past
the deadline AttachLost says the batch still runs and how to reattach. Attached batches hold the
watchdog's lease meanwhile and the deadline is under half of it, so a reconnect that works comes
before the lease could lapse. Where the caller can ask vast.ai (`probe`), each cut and each
failed reconnect asks it first: an instance that is outbid, stopped or gone will not answer
again, so InstanceLost comes at once instead of after the deadline. `on_task_end` is called (on
this thread) as each task ends: how results come home as the batch goes (remote/pulleach.py).
Ctrl-C stops the remote tasks (supervisor.stop), fetches what they wrote last, prints the
summary and re-raises; with stop_on_interrupt=False it only detaches.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from remote import supervisor
from remote.batch import RUNNER, BatchResult, Task, TaskResult, print_summary
from remote.errors import (
    AttachLost,
    AuthRefused,
    BatchError,
    HostKeyChanged,
    InstanceLost,
    NoSuchBatch,
    SshError,
)
from remote.lines import PrefixedLines
from remote.ssh import ChannelProcess, Connection
from remote.supervisor import BatchState, TaskRecord, log_names
from remote.watchdog import hold_lease

POLL_S = 0.2
SILENCE_S = 15.0
"""No frame for this long (FOLLOW's heartbeat comes every 5 s): the link is dead."""
RECONNECT_S = 120.0
"""How long a cut stream tries to reconnect, unless half the lease is shorter."""
PROBE_EVERY_S = 10.0
"""With a probe: the longest reconnect try between two questions to the API."""

Probe = Callable[[], "str | None"]
"""Why the instance will not come back, in vast.ai's words, or None while it may."""
DRAIN_S = 15.0
"""After Ctrl-C stopped the tasks: how long to wait for their last bytes."""

FOLLOW = r"""# vast-gpu follow
B=$1 i=$2
shift 2
cd "$B" 2>/dev/null || { echo "X no batch directory $B"; exit 3; }
q=0
alive() { [ -s pid ] && kill -0 "$(cat pid)" 2>/dev/null; }
for off in "$@"; do
  f=$(sed -n "${i}p" names)
  while :; do
    fin=$(grep "^task $i " state 2>/dev/null)
    size=$( (wc -c < "$f") 2>/dev/null )
    size=$((${size:-0}))
    if [ "$size" -gt "$off" ]; then
      k=$((size - off))
      echo "D $i $off $k"
      tail -c +$((off + 1)) "$f" | head -c "$k"
      off=$size q=0
    elif [ -n "$fin" ]; then
      echo "T $fin"
      break
    elif ! alive && [ -z "$(grep "^task $i " state 2>/dev/null)" ]; then
      echo "L $i"
      exit 0
    else
      q=$((q + 1))
      [ "$q" -ge 25 ] && { echo H; q=0; }
      sleep 0.2
    fi
  done
  i=$((i + 1))
done
echo E
"""


class _Cut(Exception):
    """The stream broke off; .reason says how."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _Display(PrefixedLines):
    """One task's bytes as prefixed lines on `out` (remote/lines.py)."""

    def __init__(self, out: TextIO, prefix: str, partial: bytes = b"") -> None:
        super().__init__(out.write, out.flush, prefix, partial)

    def flush(self) -> None:
        self.finish()


@dataclass
class Follower:
    """Streams one batch's logs into logs_dir, reconnecting against a deadline."""

    conn: Connection
    job: str
    tasks: Sequence[Task]
    logs_dir: Path
    out: TextIO = sys.stdout
    deadline_s: float = RECONNECT_S
    lease_s: int | None = None
    """The lease the local side holds while it follows (attached batches), for AttachLost."""
    index: int = 1
    """The first task whose end this stream has not seen yet."""
    probe: Probe | None = None
    on_task_end: Callable[[TaskRecord], None] | None = None
    records: dict[int, TaskRecord] = field(default_factory=dict)
    reconnects: list[float] = field(default_factory=list)
    """Seconds each reconnect took."""
    _shows: dict[int, _Display] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.paths = [self.logs_dir / n for n in log_names(self.tasks)]

    # --- the stream ---------------------------------------------------------------------------

    def run(self) -> str:
        """Follow to the end: "E" (every task ended) or "L" (the supervisor is gone)."""
        while True:
            try:
                return self._follow_once()
            except _Cut as cut:
                self._reconnect(cut.reason)

    def _follow_once(self, within: float | None = None) -> str:
        offsets = [self._size(p) for p in self.paths[self.index - 1:]]
        end = None if within is None else time.monotonic() + within
        try:
            proc = self.conn.start(supervisor._sh(
                FOLLOW, supervisor.batch_dir(self.job), str(self.index),
                *(str(o) for o in offsets)), interleaved=True)
        except SshError as exc:
            raise _Cut(exc.reason) from exc
        try:
            proc.close_stdin()
            return self._pump(proc, end)
        except SshError as exc:
            raise _Cut(exc.reason) from exc
        finally:
            proc.close()

    def _pump(self, proc: ChannelProcess, end: float | None) -> str:
        """The follower's stdout, parsed as it comes (its stderr is dropped), until the end
        record; a dead link, an early end or a silence past SILENCE_S is a _Cut."""
        buf = bytearray()
        heard = time.monotonic()
        while True:
            got = False
            for stream, data in proc.poll(POLL_S):
                if stream == 0:
                    buf += data
                    got = True
            now = time.monotonic()
            if got:
                heard = now
                kind = self._consume(buf)
                if kind is not None:
                    return kind
            if proc.drained:
                if not self._link_up():
                    raise _Cut("connection lost")
                raise _Cut(f"the stream ended early (exit {proc.exit_status})")
            if not self._link_up():
                raise _Cut("connection lost")
            if now - heard > SILENCE_S:
                raise _Cut(f"nothing heard for {SILENCE_S:.0f} s")
            if end is not None and now > end:
                raise _Cut("the tasks did not end in time")

    def _link_up(self) -> bool:
        transport = self.conn.client.get_transport()
        return transport is not None and transport.is_active()

    def _consume(self, buf: bytearray) -> str | None:
        while (nl := buf.find(b"\n")) >= 0:
            kind, *words = bytes(buf[:nl]).decode(errors="replace").split()
            if kind == "D":
                index, offset, size = (int(w) for w in words)
                if len(buf) < nl + 1 + size:
                    return None
                data = bytes(buf[nl + 1:nl + 1 + size])
                del buf[:nl + 1 + size]
                self._data(index, offset, data)
                continue
            del buf[:nl + 1]
            if kind == "T":
                index, code, began, ended = words[1:5]
                self._ended(TaskRecord(int(index), None if code == "-" else int(code),
                                       int(began), int(ended)))
            elif kind in ("E", "L"):
                return kind
            elif kind == "X":
                raise NoSuchBatch(self.job, self.conn.target.host, self.conn.target.port)
        return None

    def _reconnect(self, reason: str) -> None:
        began = time.monotonic()
        end = began + self.deadline_s
        self._check_lost()
        self.out.write(f"\nconnection lost ({reason}); reconnecting, for up to "
                       f"{self.deadline_s:.0f} s\n")
        self.out.flush()
        while True:
            left = end - time.monotonic()
            try:
                self.conn.reopen(min(left, PROBE_EVERY_S) if self.probe else left)
                break
            except (HostKeyChanged, AuthRefused):
                raise
            except SshError as exc:
                waited = time.monotonic() - began
                if waited >= self.deadline_s:
                    t = self.conn.target
                    raise AttachLost(t.host, t.port, self.job, waited,
                                     f"{reason}; then {exc.reason}",
                                     self._after_lost(waited)) from exc
                self._check_lost()
        took = time.monotonic() - began
        self.reconnects.append(took)
        path = self.paths[self.index - 1] if self.index <= len(self.paths) else None
        where = (f"task {self.index}, byte {self._size(path)}" if path else "the end")
        self.out.write(f"reconnected after {took:.1f} s; the stream resumes at {where}\n")
        self.out.flush()

    def _check_lost(self) -> None:
        """InstanceLost when the API says the instance will not come back."""
        state = self.probe() if self.probe is not None else None
        if state is not None:
            t = self.conn.target
            raise InstanceLost(t.host, t.port, self.job, state, self.index, len(self.tasks),
                               [self.records[i] for i in sorted(self.records)])

    def _after_lost(self, waited: float) -> str:
        if self.lease_s:
            return (f", but nobody renews its watchdog lease now: the watchdog destroys the "
                    f"instance within about {max(0, self.lease_s - waited):.0f} s unless you "
                    f"reattach before")
        return ""

    # --- what the frames mean ----------------------------------------------------------------

    def _prefix(self, index: int) -> str:
        return f"[{index}/{len(self.tasks)} {self.tasks[index - 1].slug}] "

    def _show(self, index: int) -> _Display:
        if index not in self._shows:
            path = self.paths[index - 1]
            have = path.read_bytes() if path.exists() else b""
            if not have:
                self.out.write(f"{self._prefix(index)}$ {RUNNER} {self.tasks[index - 1].line}\n")
            # a line the last stream left half-shown is shown whole once it ends
            partial = have[max(have.rfind(b"\n"), have.rfind(b"\r")) + 1:]
            self._shows[index] = _Display(self.out, self._prefix(index), partial)
        return self._shows[index]

    def _data(self, index: int, offset: int, data: bytes) -> None:
        path = self.paths[index - 1]
        have = self._size(path)
        if have != offset:
            raise BatchError(self.job, f"{path} holds {have} bytes but the instance sent task "
                                       f"{index}'s log from byte {offset}: the local copy was "
                                       f"changed; move it away and attach again")
        show = self._show(index)
        with path.open("ab") as log:
            log.write(data)
        show.feed(data)

    def _ended(self, rec: TaskRecord) -> None:
        self._show(rec.index).flush()
        self.records[rec.index] = rec
        self.index = rec.index + 1
        if rec.exit_code not in (0, None):
            task = self.tasks[rec.index - 1]
            self.out.write(f"warning: task {rec.index}/{len(self.tasks)} failed (exit "
                           f"{rec.exit_code}): {task.line}\n  log: {self.paths[rec.index - 1]}\n")
            self.out.flush()
        self.write_summary()
        if self.on_task_end is not None:
            self.on_task_end(rec)

    @staticmethod
    def _size(path: Path | None) -> int:
        return path.stat().st_size if path is not None and path.exists() else 0

    # --- the result ---------------------------------------------------------------------------

    def result(self) -> BatchResult:
        batch = BatchResult(logs_dir=self.logs_dir, total=len(self.tasks))
        for index in sorted(self.records):
            rec = self.records[index]
            status = ("interrupted" if rec.exit_code is None else
                      "ok" if rec.exit_code == 0 else "failed")
            batch.results.append(TaskResult(self.tasks[index - 1], index, rec.exit_code,
                                            float(rec.ended - rec.started),
                                            self.paths[index - 1], status))
        return batch

    def write_summary(self) -> None:
        """summary.json as remote/batch.py writes it, so the run report finds the tasks."""
        batch = self.result()
        data = {"total": batch.total, "failed": batch.failed, "job": self.job,
                "tasks": [r.to_json() for r in batch.results]}
        tmp = self.logs_dir / "summary.json.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.logs_dir / "summary.json")

    def stop_and_drain(self) -> None:
        """Stop the remote tasks (reconnecting first if the link is down), then take the
        bytes they wrote last, so the local logs end as the remote ones do."""
        try:
            self.conn.transport  # noqa: B018 - raises when the link is down
        except SshError:
            self.conn.reopen(min(self.deadline_s, 30.0))
        supervisor.stop(self.conn, self.job)
        try:
            self._follow_once(within=DRAIN_S)
        except _Cut as cut:
            self.out.write(f"warning: the last output of the stopped tasks did not come "
                           f"({cut.reason})\n")


# --- attaching ----------------------------------------------------------------------------


@contextmanager
def _minded(conn: Connection, state: BatchState, out: TextIO) -> Iterator[int | None]:
    """An attached batch holds the watchdog's lease while followed; a detached one needs none."""
    if state.mode != "attached":
        yield None
        return
    with hold_lease(conn, out) as lease:
        yield lease.seconds if lease is not None else None


def attach(
    conn: Connection, job: str, logs_dir: Path, *, out: TextIO = sys.stdout,
    stop_on_interrupt: bool | None = None, deadline_s: float = RECONNECT_S,
    tasks: Sequence[Task] | None = None, probe: Probe | None = None,
    on_task_end: Callable[[TaskRecord], None] | None = None,
) -> BatchResult:
    """Stream the batch from where the local logs end to its end; the summary table after.
    Ctrl-C stops the remote tasks of an attached batch and leaves a detached one running
    (stop_on_interrupt says otherwise)."""
    tasks = list(tasks) if tasks is not None else supervisor.read_tasks(conn, job)
    state = supervisor.read_state(conn, job)
    if stop_on_interrupt is None:
        stop_on_interrupt = state.mode == "attached"
    with _minded(conn, state, out) if state.running else nullcontext() as lease_s:
        follow = Follower(conn, job, tasks, logs_dir, out, lease_s=lease_s,
                          deadline_s=min(deadline_s, lease_s / 2) if lease_s else deadline_s,
                          probe=probe, on_task_end=on_task_end)
        try:
            follow.run()
        except KeyboardInterrupt:
            if stop_on_interrupt:
                follow.stop_and_drain()
                out.write("\ninterrupted: the remote tasks were stopped\n")
            else:
                out.write(f"\ndetached: batch {job} goes on on the instance; "
                          f"`inv attach --job {job}` to follow it again\n")
            print_summary(follow.result(), out)
            raise
        except (AttachLost, InstanceLost) as exc:
            out.write(f"\nerror: {exc}\n")
            print_summary(follow.result(), out)
            raise
    result = follow.result()
    print_summary(result, out)
    return result
