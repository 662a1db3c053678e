"""A stack locked by another pulumi command: who holds it, since when, and what to do.

Pulumi's DIY backends (file, s3, postgres) lock a stack for every command that changes it
(up, destroy, refresh, import, stack init/rm) by writing one lock object beside the state,
`.pulumi/locks/<org>/<project>/<stack>/<uuid>.json` = {pid, username, hostname, timestamp}
(pkg/backend/diy/lock.go; on postgres it is a row of the state table). A second command does
not wait: it fails at once with

    the stack is currently locked by 1 lock(s). Either wait for ... `pulumi cancel`.
      <lock url, credentials masked>: created by alice@gpu-box (pid 4242) at 2026-12-02T21:11:24Z

We parse that text rather than read the lock rows ourselves: it is the same on every backend,
and it needs no database driver. A lock whose host is this machine and whose pid is no
running pulumi is stale (its command was killed); we say so and give the `pulumi cancel`
command, and never cancel on our own: only a person knows that no teammate still runs it.

Pulumi's lock is write-then-recheck, so two commands started at the same moment can both see
the other's lock and both back off (measured: about 1 run in 8). `retry_contended` therefore
tries again after a short random pause while the lock it meets is not the same one twice.
"""

from __future__ import annotations

import os
import random
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from workflow.errors import StackLocked

HEADER = re.compile(r"the stack is currently locked by (\d+) lock\(s\)")
LINE = re.compile(
    r"^\s*(?P<url>\S.*?): created by (?P<user>.*)@(?P<host>[^@\s]*) "
    r"\(pid (?P<pid>\d+)\) at (?P<at>\S+)\s*$",
    re.MULTILINE,
)
RETRY_PAUSE_S = (0.3, 1.5)
RETRY_ATTEMPTS = 4

T = TypeVar("T")


@dataclass(frozen=True)
class Lock:
    url: str
    """Where the lock lives, as pulumi prints it (user and password masked)."""
    user: str
    host: str
    pid: int
    since: datetime | None

    @property
    def lock_id(self) -> str:
        return self.url.split("?", 1)[0].rsplit("/", 1)[-1]

    def stale(self, this_host: str | None = None) -> bool:
        """True when it was made on this machine by a pulumi that no longer runs."""
        return self.host == (this_host or socket.gethostname()) and not pulumi_running(self.pid)

    def describe(self, now: datetime | None = None) -> str:
        when = "at an unknown time"
        if self.since is not None:
            age = ((now or datetime.now(UTC)) - self.since).total_seconds()
            when = f"since {self.since.strftime('%Y-%m-%d %H:%M:%S %Z')} ({_ago(age)})"
        return f"{self.user}@{self.host}, pid {self.pid}, {when}"


def parse_locks(output: str) -> list[Lock] | None:
    """The locks named in pulumi's output, or None when it is no lock error."""
    if not HEADER.search(output):
        return None
    return [Lock(m["url"], m["user"], m["host"], int(m["pid"]), _time(m["at"]))
            for m in LINE.finditer(output)]


def pulumi_running(pid: int) -> bool:
    """A process of that pid runs here and is a pulumi (a reused pid is something else)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return comm.startswith("pulumi")


def cancel_command(stack: str, program: Path) -> str:
    cwd = "" if Path.cwd().resolve() == program.resolve() else f" --cwd {program}"
    return f"pulumi cancel --yes --stack {stack}{cwd}"


def locked_error(command: list[str], exit_code: int, output: str, stack: str,
                 program: Path) -> StackLocked | None:
    """The StackLocked to raise for a failed pulumi command, or None if no lock stopped it."""
    locks = parse_locks(output)
    if locks is None:
        return None
    stale = bool(locks) and all(lock.stale() for lock in locks)
    return StackLocked(command, exit_code, output, stack=stack, locks=locks, stale=stale,
                       message=locked_message(stack, locks, stale, cancel_command(stack, program)))


def locked_message(stack: str, locks: Sequence[Lock], stale: bool, cancel: str) -> str:
    holders = "\n".join(f"  held by {lock.describe()}" for lock in locks) or "  (holder unknown)"
    if stale:
        return (
            f"stack {stack!r} is locked by a pulumi command that no longer runs (killed?): no "
            f"such pulumi process on this host.\n{holders}\n"
            f"Remove the stale lock, then look for anything the killed run rented:\n"
            f"  {cancel}\n  inv sweep"
        )
    return (
        f"stack {stack!r} is locked: another pulumi command is working on it right now "
        f"(pulumi does not wait).\n{holders}\n"
        f"Wait until it is done (ask its owner), then run yours again. Only if that command "
        f"is surely gone (its machine crashed or is off), remove the lock:\n  {cancel}"
    )


def retry_contended(run: Callable[[], T], note: Callable[[str], None],
                    pause: Callable[[float], None] = time.sleep) -> T:
    """run(); on StackLocked, again after a random pause, unless the lock is stale or is the
    one met last time (a holder that really works): then the StackLocked goes up."""
    seen: set[str] = set()
    for _ in range(RETRY_ATTEMPTS - 1):
        try:
            return run()
        except StackLocked as exc:
            ids = {lock.lock_id for lock in exc.locks}
            if exc.stale or not ids or ids & seen:
                raise
            seen |= ids
            wait = random.uniform(*RETRY_PAUSE_S)
            note(f"stack {exc.stack!r} was locked ({exc.locks[0].describe()}); "
                 f"trying again in {wait:.1f} s in case both of us started at once")
            pause(wait)
    return run()


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
