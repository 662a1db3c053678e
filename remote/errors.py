"""Every error the remote package raises on purpose, in one tree.

paramiko's and socket's exceptions are converted in remote/ssh.py and nowhere else::

    RemoteError
    ├── KeyPairError         no usable SSH key pair: .looked_in
    ├── TaskFileError        a tasks file that cannot be used: .path .line_no .line (0, '')
    ├── UnsafePathError      a remote path refused (would escape, cannot be made): .path .reason
    ├── SyncSourceError      the local tree to sync cannot be listed or read: .path
    ├── BatchError           a supervised batch cannot be started/attached/resumed: .job
    │   ├── BatchRunning     the job's batch still runs on the instance: .pid
    │   ├── NoSuchBatch      the instance holds no batch of that job: .where
    │   └── TasksChanged     a resume's task list differs from the batch's: .index .old .new
    └── SshError             talking to the instance failed: .host .port
        ├── ConnectError     refused, reset, timed out, after the retries: .attempts
        ├── AuthRefused      the server refused our key
        ├── HostKeyChanged   the pinned host key differs: .known_hosts
        ├── CommandError     a remote command failed: .command .exit_code .stdout .stderr
        ├── TaskDisconnected the connection dropped while a batch task ran: .line .log_path
        ├── AttachLost       a supervised batch's stream stayed cut past the deadline: .job
        ├── InstanceLost     the stream broke and vast.ai says the instance is not running:
        │                    .job .state .index .total .records (tasks that ended)
        ├── PullError        a download from the instance broke off or came short: .remote_dir
        └── SyncError        an upload to the instance broke off: .doing (a rerun resumes)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

TAIL_LINES = 10


def tail(output: str | bytes, lines: int = TAIL_LINES) -> str:
    """The last lines of a remote command's output on one line, for an error message."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    last = text.strip().splitlines()[-lines:]
    return " | ".join(last) if last else "(no output)"


class RemoteError(Exception):
    """Base of everything the remote package raises on purpose."""


class KeyPairError(RemoteError):
    """No SSH key pair we can use; ``looked_in`` lists every place tried."""

    def __init__(self, reason: str, looked_in: Sequence[Path | str] = ()) -> None:
        self.looked_in = tuple(str(p) for p in looked_in)
        text = reason
        if self.looked_in:
            text += "; looked in: " + ", ".join(self.looked_in)
        super().__init__(text)


class TaskFileError(RemoteError):
    """A tasks file that cannot be used: a bad line (bad quoting, too long), or the whole file
    (missing, unreadable, not text, no task at all: line_no 0)."""

    def __init__(self, path: str, line_no: int, line: str, reason: str) -> None:
        self.path = path
        self.line_no = line_no
        self.line = line
        super().__init__(f"{path}:{line_no}: {reason}: {line!r}" if line_no else
                         f"tasks file {path}: {reason}")


class UnsafePathError(RemoteError):
    """A path from the instance that is refused: it would land outside the local target, or
    cannot be made here (name too long, a local entry in the way); a pull skips it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"refusing remote path {path!r}: {reason}")


class SshError(RemoteError):
    """Talking to host:port over SSH failed."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"ssh {host}:{port}: {reason}")


class ConnectError(SshError):
    """No SSH session could be opened (refused, reset, timeout, bad banner), retries spent."""

    def __init__(self, host: str, port: int, reason: str, attempts: int = 1) -> None:
        self.attempts = attempts
        super().__init__(host, port, reason)
        if attempts > 1:
            self.args = (f"{self.args[0]} (after {attempts} attempts)",)


class AuthRefused(SshError):
    """The server answered but refused our key."""


class HostKeyChanged(SshError):
    """The host key differs from the one pinned for this stack's instance."""

    def __init__(self, host: str, port: int, known_hosts: Path, seen: str, pinned: str) -> None:
        self.known_hosts = known_hosts
        super().__init__(
            host, port,
            f"host key changed: pinned {pinned}, now {seen}. Another machine may answer at "
            "this address (the instance was replaced?) or someone is in the middle. If you "
            f"replaced the instance on purpose, delete {known_hosts} and retry.",
        )


class CommandError(SshError):
    """A remote command exited non-zero; the message has the command, code and output tails."""

    def __init__(
        self, host: str, port: int, command: str, exit_code: int, stdout: str, stderr: str
    ) -> None:
        self.command = command
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        parts = [f"`{command}` exited {exit_code}"]
        for name, text in (("stdout", stdout), ("stderr", stderr)):
            tail = text.strip().splitlines()[-TAIL_LINES:]
            if tail:
                parts.append(f"last {len(tail)} line(s) of {name}:\n  " + "\n  ".join(tail))
        super().__init__(host, port, "\n".join(parts))


class SyncSourceError(RemoteError):
    """The local tree to sync cannot be listed or read (missing, git failed, unreadable)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot sync {self.path}: {reason}")


class SyncError(SshError):
    """An upload broke off; what was sent is kept, and a rerun sends only the rest."""

    def __init__(self, host: str, port: int, doing: str, reason: str) -> None:
        self.doing = doing
        super().__init__(
            host, port,
            f"{doing} failed: {reason.rstrip('. ')}. Files already uploaded are kept; rerun the "
            "sync to resume (only missing or changed files are sent again).",
        )


class TaskDisconnected(SshError):
    """The connection dropped while a batch task ran; its output so far stays in the log."""

    def __init__(self, host: str, port: int, line: str, log_path: Path, reason: str) -> None:
        self.line = line
        self.log_path = log_path
        super().__init__(
            host, port,
            f"connection lost while running task `{line}` ({reason}); the task's state on the "
            f"instance is unknown; its output so far is in {log_path}",
        )


class PullError(SshError):
    """A pull broke off or a file came short; files already pulled are kept, a rerun resumes."""

    def __init__(self, host: str, port: int, remote_dir: str, reason: str) -> None:
        self.remote_dir = remote_dir
        super().__init__(
            host, port,
            f"pull of {remote_dir} failed: {reason}. Files already pulled are kept; rerun the "
            "pull to fetch the rest.",
        )


class BatchError(RemoteError):
    """A batch under the instance's supervisor (remote/supervisor.py) that cannot be used as
    asked."""

    def __init__(self, job: str, reason: str) -> None:
        self.job = job
        super().__init__(f"batch {job}: {reason}")


class BatchRunning(BatchError):
    def __init__(self, job: str, pid: int) -> None:
        self.pid = pid
        super().__init__(job, f"still running on the instance (supervisor pid {pid}): attach "
                              f"to it (`inv attach --job {job}`) or pick another --job")


class NoSuchBatch(BatchError):
    def __init__(self, job: str, host: str, port: int) -> None:
        self.where = f"{host}:{port}"
        super().__init__(job, f"the instance at {host}:{port} holds no batch of this job "
                              f"(never started there, or the instance was replaced)")


class TasksChanged(BatchError):
    """A resume must run the same task list: `index` is the first task that differs."""

    def __init__(self, job: str, index: int, old: str | None, new: str | None) -> None:
        self.index = index
        self.old = old
        self.new = new
        super().__init__(job, f"the task list differs from the batch's at task {index}: the "
                              f"batch has {old!r}, this list {new!r}; resume with the same "
                              f"tasks file, or start a new job")


class AttachLost(SshError):
    """The stream of a supervised batch broke and no reconnect worked before the deadline."""

    def __init__(self, host: str, port: int, job: str, waited_s: float, reason: str,
                 after: str) -> None:
        self.job = job
        self.waited_s = waited_s
        super().__init__(host, port,
                         f"connection lost ({reason}); no reconnect within {waited_s:.0f} s. "
                         f"The batch {job} is still running on the instance{after}; reattach "
                         f"with `inv attach --job {job}`")


class InstanceLost(SshError):
    """The stream of a batch broke and the API says the instance will not come back (outbid,
    stopped, exited, offline or gone): reconnecting is pointless. ``records`` holds what the
    stream saw end (supervisor.TaskRecord), so a new instance can resume the rest."""

    def __init__(self, host: str, port: int, job: str, state: str, index: int, total: int,
                 records: Sequence[object] = ()) -> None:
        self.job = job
        self.state = state
        self.index = index
        self.total = total
        self.records = list(records)
        super().__init__(host, port, f"the instance is lost at task {index} of {total} of job "
                                     f"{job}: vast.ai says {state}")
