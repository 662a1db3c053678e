"""Remote commands started so that they can be killed later: after a stall, the stream is
dead but its remote process may live on, and an instance billing for a stuck tar is what a
pull must not leave behind."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Callable

from remote.errors import SshError
from remote.ssh import Connection

PID_DIR = "/tmp/vast-gpu"  # the watchdog's dir on the instance, wiped at each boot
KILL_TIMEOUT_S = 10.0


class RemotePids:
    """The pid files of one run's remote commands, each named by what it is ("tar", "find")."""

    def __init__(self, conn: Connection, prefix: str) -> None:
        self.conn = conn
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:12]}"

    def pidfile(self, what: str) -> str:
        return f"{PID_DIR}/{self.prefix}-{what}.pid"

    def tracked(self, command: str, what: str) -> str:
        """The command run so that its pid (its process group's: sshd makes each session
        one) lands in pidfile(what)."""
        return (f"mkdir -p {PID_DIR} && echo $$ > {self.pidfile(what)} && "
                f"exec sh -c {shlex.quote(command)}")

    def kill(self, what: str, warn: Callable[[str], None]) -> None:
        """Kill the command's process group; best effort, bounded."""
        pidfile = self.pidfile(what)
        try:
            self.conn.run(f"kill -9 -- -$(cat {pidfile}) 2>/dev/null; rm -f {pidfile}",
                          check=False, timeout=KILL_TIMEOUT_S)
        except SshError as exc:
            warn(f"could not stop the remote command ({exc}); the instance's own dead-man "
                 "switch still ends it")
