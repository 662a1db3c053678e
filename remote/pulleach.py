"""Results home as the batch goes (`--pull-each`): an incremental pull after each task ends.

A task that ends only wakes a background thread; the thread pulls workDir over a connection
of its own (remote/pull.py: only what is new or changed since the last pull comes), so the
stream of the batch never waits for it. Task ends that come while a pull runs are folded into
the next one, so at any moment at most the running task's output (and the pull in flight) is
only on the instance. A pull that fails is reported and the next one tries again: these pulls
are a safety net, the pull after the batch stays the one that must succeed.

The thread never writes to the terminal (its lines would cut through the batch's): what each
pull did is kept in `pulls` and said by `say_done`, which the batch's own thread calls.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from remote.errors import RemoteError
from remote.pull import pull
from remote.ssh import Connection, Target
from remote.supervisor import TaskRecord

CONNECT_DEADLINE_S = 15.0
"""A safety-net pull gives up connecting sooner than a command would; the next one retries."""
ABANDON_S = 5.0


@dataclass(frozen=True)
class EachPull:
    """One background pull: after which task, what came, how long it took, or its error."""

    after_task: int
    files: int
    nbytes: int
    seconds: float
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return (f"pull-each after task {self.after_task}: failed ({self.error}); the next "
                    "pull tries again")
        return (f"pull-each after task {self.after_task}: {self.files} file(s), "
                f"{self.nbytes} bytes in {self.seconds:.2f} s")

    def to_json(self) -> dict[str, object]:
        return {"after_task": self.after_task, "files": self.files, "bytes": self.nbytes,
                "seconds": round(self.seconds, 3), **({"error": self.error} if self.error else {})}


class PullEach:
    """Use as a context manager around the batch; `task_ended` is its `on_task_end`."""

    def __init__(self, target: Target, work_dir: str, local_dir: Path,
                 say: Callable[[str], None]) -> None:
        self.target = target
        self.work_dir = work_dir
        self.local_dir = local_dir
        self.say = say
        self.pulls: list[EachPull] = []
        self._said = 0
        self._wanted: int | None = None  # the last task ended and not pulled after yet
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="pull-each", daemon=True)

    def __enter__(self) -> PullEach:
        self._thread.start()
        return self

    def __exit__(self, kind: object, *_exc: object) -> None:
        """After the batch, let the pull in flight (and one asked for) finish: the pull after
        the batch must not run beside it, both writing the same files. When the batch broke
        (a lost instance, Ctrl-C) wait only ABANDON_S: a pull to a dead instance only retries."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(None if kind is None else ABANDON_S)
        self.say_done()

    def task_ended(self, record: TaskRecord) -> None:
        """Ask for a pull after this task; say the pulls done so far."""
        self.say_done()
        with self._wake:
            self._wanted = record.index
            self._wake.notify()

    def say_done(self) -> None:
        for done in self.pulls[self._said:]:
            self.say(done.describe())
        self._said = len(self.pulls)

    def _work(self) -> None:
        # opened by the first pull, so a failed open is that pull's error
        conn = Connection(self.target, deadline_s=CONNECT_DEADLINE_S)
        try:
            while True:
                with self._wake:
                    while self._wanted is None and not self._closing:
                        self._wake.wait()
                    after, self._wanted = self._wanted, None
                if after is None:  # closing, nothing asked for
                    return
                self.pulls.append(self._pull_once(conn, after))
        finally:
            conn.close()

    def _pull_once(self, conn: Connection, after: int) -> EachPull:
        began = time.monotonic()
        notes = io.StringIO()
        try:
            got = pull(conn, self.work_dir, local_dir=self.local_dir, log=notes, tty=False)
        except (RemoteError, OSError) as exc:
            conn.close()  # the next pull opens a fresh connection
            return EachPull(after, 0, 0, time.monotonic() - began,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return EachPull(after, len(got.fetched), got.nbytes, time.monotonic() - began)
