"""The dead-man switch: a watchdog on the instance that destroys it when nobody is minding it.

An instance bills by the hour whether or not anyone is still watching it: a laptop that sleeps,
a killed `inv deploy`, a forgotten stack. The watchdog runs on the instance itself, so it works
when the local side is gone. It is a POSIX `sh` script (every image has `sh`; not every image
has python or curl) that the rent's `onstart` writes and starts at boot. Every few seconds it
checks three triggers, and when one fires it DELETEs its own instance with the instance's own
`CONTAINER_API_KEY` (which can destroy that one instance and nothing else): the account's key
never leaves the user's machine.

- max lifetime: a hard deadline counted from boot;
- lease: while a batch runs, the local side holds a lease (a file with a remote-clock expiry)
  and renews it over its SSH connection; a lease left to lapse (the local side was killed, or
  lost the instance for longer than the lease) fires;
- idle: no SSH session and no lease for that long. A detached batch's supervisor counts as a
  session while it runs (its command line carries remote/supervisor.py's hold_title).

0 disables a trigger; all three 0 installs no watchdog at all. The state lives in
`/tmp/vast-gpu/` (`watchdog.log`, `lease`, `lease_s`), wiped at each boot: a container's /tmp
is its own, on vast.ai as in vastsim. Timing is in whole seconds
(`date +%s`): a trigger fires between a second before its time and one check interval after.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from remote.errors import SshError
from remote.ssh import Connection

STATE_DIR = "/tmp/vast-gpu"
"""The watchdog's directory on the instance."""
MAX_ONSTART_CHARS = 4096  # vast.ai's limit on onstart (+ args), docs/vast-api.md, "Rent"
MAX_CHECK_S = 30
RENEWALS_PER_LEASE = 3
LEASE_COMMAND_TIMEOUT_S = 30.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

# The watchdog itself. $1 max lifetime, $2 idle timeout, $3 check interval, all in seconds.
# No example of an sshd process title may appear in this text: the onstart's own `sh -c`
# command line holds it, and the session scan below would then always see a session.
_SCRIPT = r"""trap '' HUP
d=${0%/*} L=$1 I=$2 C=$3
now() { date +%s; }
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }
del() {
  u=${VAST_URL:-https://console.vast.ai}/api/v0/instances/$CONTAINER_ID/
  h="Authorization: Bearer $CONTAINER_API_KEY"
  if command -v curl >/dev/null; then curl -fsS -m 30 -X DELETE -H "$h" "$u"
  elif wget --help 2>&1 | grep -q -- --method; then
    wget -q -O- -T 30 --method=DELETE --header="$h" "$u"
  elif command -v python3 >/dev/null; then U=$u python3 -c 'import os,urllib.request as r
k="Bearer "+os.environ["CONTAINER_API_KEY"]
r.urlopen(r.Request(os.environ["U"],method="DELETE",headers={"Authorization":k}),timeout=30)'
  else log "no curl, GNU wget or python3 here: cannot destroy the instance"; return 1
  fi
}
fire() {
  log "firing: $1; destroying instance $CONTAINER_ID with its own key"
  n=0
  until del; do
    n=$((n+1))
    [ $n -ge 5 ] && { log "destroy failed $n times; next try at the next check"; return; }
    sleep $((n*2))
  done
  log "destroy requested"; sleep 60
}
b=$(now) s=$b
log "watching: max lifetime ${L}s, idle ${I}s, lease ${4}s, check every ${C}s (0 = off)"
while :; do
  t=$(now) e=$(cat "$d/lease" 2>/dev/null)
  if [ "$L" -gt 0 ] && [ "$t" -ge $((b+L)) ]; then fire "max lifetime of ${L}s reached"
  elif [ -n "$e" ] && [ "$t" -ge "$e" ]; then fire "lease lapsed: the local side stopped renewing"
  elif [ -n "$e" ] || cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0\n' '  ' |
      grep -q '[s]shd[-a-z]*: [^ ]*@'; then s=$t
  elif [ "$I" -gt 0 ] && [ "$t" -ge $((s+I)) ]; then fire "idle for ${I}s: no SSH session, no lease"
  fi
  sleep "$C"
done
"""

_INSTALLER = """\
# vast-gpu dead-man switch (README: "Never billing by accident"); your onstart follows.
if [ -n "$CONTAINER_ID" ] && [ -n "$CONTAINER_API_KEY" ]; then
d={state_dir}; rm -rf "$d"; mkdir -p "$d"; echo {lease} >"$d/lease_s"
cat >"$d/watchdog.sh" <<'VAST_GPU_WATCHDOG_END'
{script}VAST_GPU_WATCHDOG_END
command -v setsid >/dev/null && s=setsid || s=
(cd / && exec $s sh "$d/watchdog.sh" {lifetime} {idle} {check} {lease} </dev/null \
>>"$d/watchdog.log" 2>&1) &
fi
unset d s
"""

_FIND_DIR = f"d={STATE_DIR}\n"
_TAKE_LEASE = _FIND_DIR + """\
s=$(cat "$d/lease_s" 2>/dev/null); [ "${s:-0}" -gt 0 ] 2>/dev/null || exit 0
echo $(( $(date +%s) + s )) >"$d/lease.new" && mv -f "$d/lease.new" "$d/lease" && echo "$s"
"""
_DROP_LEASE = _FIND_DIR + 'rm -f "$d/lease"\n'


def parse_duration(text: str | float) -> int:
    """Whole seconds from `90`, `45s`, `30m`, `12h`, `1d` (or a number); ValueError if not."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, int | float):
        value, unit = float(text), ""
    else:
        match = _DURATION.fullmatch(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a duration like 90, 45s, 30m, 12h or 1d")
        value, unit = float(match.group(1)), match.group(2).lower()
    if value < 0 or value != value or value == float("inf"):
        raise ValueError(f"{text!r} is not a duration of 0 or more seconds")
    return round(value * _UNIT_S[unit])


@dataclass(frozen=True)
class Deadman:
    """The three triggers, in whole seconds; 0 turns one off."""

    max_lifetime_s: int
    idle_timeout_s: int
    lease_timeout_s: int
    check_s: int | None = None
    """Seconds between checks; None: a tenth of the shortest trigger, 1..MAX_CHECK_S."""

    @property
    def enabled(self) -> bool:
        return any((self.max_lifetime_s, self.idle_timeout_s, self.lease_timeout_s))

    @property
    def interval_s(self) -> int:
        if self.check_s is not None:
            return max(1, int(self.check_s))
        shortest = min((t for t in (self.max_lifetime_s, self.idle_timeout_s,
                                    self.lease_timeout_s) if t > 0), default=MAX_CHECK_S * 10)
        return max(1, min(MAX_CHECK_S, shortest // 10))

    def installer(self) -> str:
        """The onstart text that writes the watchdog and starts it in the background."""
        return _INSTALLER.format(
            state_dir=STATE_DIR, script=_SCRIPT, lifetime=int(self.max_lifetime_s),
            idle=int(self.idle_timeout_s), check=self.interval_s, lease=int(self.lease_timeout_s),
        )


INSTALLER_MAX_CHARS = len(Deadman(10**9, 10**9, 10**9, 10**9).installer())
"""The most onstart space the installer takes; the user's onstart gets the rest."""
MAX_USER_ONSTART_CHARS = MAX_ONSTART_CHARS - INSTALLER_MAX_CHARS


def onstart_with_watchdog(user_onstart: str | None, deadman: Deadman) -> str | None:
    """The onstart to rent with: the installer first (so a failing user onstart can't skip
    it), then the user's script unchanged."""
    if not deadman.enabled:
        return user_onstart
    return deadman.installer() + (user_onstart or "")


# --- the lease, the local side ----------------------------------------------------------------


class Lease:
    """A lease held on one instance: renewed from a thread over the open connection."""

    def __init__(self, conn: Connection, seconds: int, out: TextIO | None) -> None:
        self.conn = conn
        self.seconds = seconds
        self.failures = 0
        self._out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="vast-gpu-lease",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _renew_loop(self) -> None:
        """Renew every third of the lease: two renewals may fail before it lapses."""
        while not self._stop.wait(self.seconds / RENEWALS_PER_LEASE):
            try:
                self.conn.run(_TAKE_LEASE, timeout=LEASE_COMMAND_TIMEOUT_S)
            except SshError as exc:
                self.failures += 1
                if self.failures == 1 and self._out is not None:
                    self._out.write(f"warning: could not renew the watchdog lease ({exc}); "
                                    f"it lapses {self.seconds} s after the last renewal and "
                                    f"the instance is then destroyed\n")
                    self._out.flush()

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(LEASE_COMMAND_TIMEOUT_S + 1)
        try:
            self.conn.run(_DROP_LEASE, timeout=LEASE_COMMAND_TIMEOUT_S)
        except SshError as exc:
            if self._out is not None:
                self._out.write(f"warning: could not release the watchdog lease ({exc}); "
                                f"it lapses within {self.seconds} s and the watchdog then "
                                f"destroys the instance\n")
                self._out.flush()


@contextmanager
def hold_lease(conn: Connection, out: TextIO | None = None) -> Iterator[Lease | None]:
    """Hold the watchdog's lease for the block; None when the instance has no lease to hold
    (no watchdog, or its lease trigger is off). The lease length is the stack's `leaseTimeout`,
    which the instance knows: the local side needs no setting of its own."""
    answer = conn.run(_TAKE_LEASE, check=False, timeout=LEASE_COMMAND_TIMEOUT_S)
    seconds = answer.stdout.strip()
    if answer.exit_code != 0 or not seconds.isdigit():
        if answer.exit_code != 0 and out is not None:
            out.write(f"warning: could not take the watchdog lease (exit {answer.exit_code}: "
                      f"{answer.stderr.strip()[-200:]}); the idle timeout alone guards this "
                      f"batch\n")
        yield None
        return
    lease = Lease(conn, int(seconds), out)
    lease.start()
    try:
        yield lease
    finally:
        lease.release()
