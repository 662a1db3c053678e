"""One vastsim instance's SSH server: a real OpenSSH sshd, with its own /app and /work.

On vast.ai a rented instance is a container: SSH logs in as root, and /app and /work belong to
that container alone. vastsim gives each instance the same view without containers.

As root, ``unshare --mount --propagation private --pid --fork`` runs a small ``sh`` script as
the init of a new mount and pid namespace. The script bind-mounts ``root/app`` on /app,
``root/work`` on /work, ``root/tmp`` on /tmp (a container has its own /tmp; nothing an
instance leaves there outlives it), ``root/home`` on the login user's home (a container's /root
is its own: the host user's ~/.bashrc, which bash reads even for `ssh host cmd`, must not run
there; one that ran `pyenv rehash` made every session wait on a stale host lock) and
``root/ssh`` on /run/vastsim/ssh, starts onstart in the
background, then execs sshd, which stays the namespace's init. The ssh bind lets sshd still
find its keys when ``root`` itself lies under /app, /work or /tmp. The binds exist only inside
the namespace: the host's /app, /work and /tmp are never written. A missing mount point
(/app, /work, /run/vastsim/ssh) is created on the host as an empty directory, and nothing else
is done to it. Every process of the instance
(sshd, sessions, onstart and whatever they start) shares the mount namespace, so ``kill`` and
``stop`` find them by ``/proc/PID/ns/mnt``. The pid namespace makes the kernel kill and reap the
rest once sshd dies, so no zombie is left even where PID 1 never reaps orphans. Sessions see a
container-like ``ps`` (sshd is PID 1); once the last process has gone, the mounts go too.

Not root (or ``isolate=False``): there are no namespaces. sshd runs as the current user, and
that is the only user who can log in (``SshHost.user``). /app and /work can't be bound, so
sessions and onstart work in ``root/app`` and ``root/work`` directly, and get ``HOME`` set to
``root/home`` (sshd's ``SetEnv`` comes after its own ``HOME``), so bash reads no host dotfile.
``APP_DIR`` and ``WORK_DIR`` in their environment give those paths (``SshHost.app_dir`` and
``work_dir``; the instance record should advertise them). A small Python "reaper" (a child
subreaper) stands where unshare stands as root: every process of the instance stays its
descendant, which is how ``kill``/``stop`` find them, and it reaps orphans. ``APP_DIR`` and
``WORK_DIR`` are set in namespace mode too (/app and /work), so clients can use them without
knowing the mode.

Files under ``root``: ``app/``, ``work/``, ``tmp/``, ``home/``, ``onstart.log``, and ``ssh/``
with the host key (made once, kept across boots), ``authorized_keys``, ``sshd_config`` (0600:
it holds the session environment, kept off the command line where ``ps`` shows it),
``sshd.log``, ``sshd.pid`` and ``leader`` (pids of a running boot, so a restarted vastsim can
still kill it).

The sshd is /usr/sbin/sshd, or the absolute path in ``$VASTSIM_SSHD`` (tests use it for an
sshd that fails). ``check_tools`` runs before vastsim serves: without sshd or ssh-keygen it
refuses, naming the Debian package, rather than renting instances that can never boot. As root
an sshd under /tmp, /app or /work is refused too: the instance's own binds hide it there.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"  # sshd refuses to run unless started by absolute path
SSHD_ENV = "VASTSIM_SSHD"  # another sshd (absolute path), e.g. for tests
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")
SSH_MOUNT = Path("/run/vastsim/ssh")
APP, WORK = Path("/app"), Path("/work")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READY_TIMEOUT = 10.0
START_TIMEOUT = 5.0
STOP_GRACE = 2.0
KILL_TIMEOUT = 5.0
POLL_INTERVAL = 0.005
LOG_TAIL_LINES = 20

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# The instance's init until it execs sshd. Positional args keep every value out of shell
# quoting. fd 3 is opened before the binds, so onstart.log is reachable even under /work.
_BOOT_SCRIPT = """\
set -e
onstart_log=$1 onstart=$2 delay=$3 binds=$4
shift 4
exec 3>>"$onstart_log"
while [ "$binds" -gt 0 ]; do
  mount --bind "$1" "$2"
  shift 2
  binds=$((binds - 1))
done
if [ -n "$onstart" ]; then
  (cd / && exec sh -c "$onstart") </dev/null >&3 2>&3 &
fi
exec 3>&-
if [ "$delay" != 0 ]; then
  # As a namespace's init, sh gets only signals it has a handler for; `wait` lets it act at once.
  trap 'exit 143' TERM
  sleep "$delay" & wait $!
  trap - TERM
fi
exec "$@"
"""


def _login_home() -> Path:
    """The home of the user sessions log in as (sshd runs as that user, or as root)."""
    return Path(pwd.getpwuid(os.geteuid()).pw_dir)


def bind_order(pairs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """The binds (source, target) in an order where no bind hides a later one's source: a
    target that holds other sources (the state dir under /work, say) is bound after them."""
    def hides_others(pair: tuple[Path, Path]) -> int:
        return sum(src.is_relative_to(pair[1]) for src, _ in pairs if (src, _) != pair)
    return sorted(pairs, key=hides_others)


# Fallback stand-in for the pid namespace: adopts every orphan of the instance and reaps it,
# and exits (with sshd's status) only when no descendant is left. It names its child (sh, then
# sshd) in argv[1] before it can reap it: "pid starttime", then sshd's status when it exits.
# Only the reaper knows which child is sshd; by the time vastsim looks, sshd may be gone and
# onstart, orphaned, the reaper's only child.
_REAPER = """\
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit(f"vastsim reaper: prctl failed, errno {ctypes.get_errno()}")
report = sys.argv[1]
child = os.fork()
if child == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
with open(f"/proc/{child}/stat") as stat:
    starttime = stat.read().rsplit(")", 1)[1].split()[19]
with open(report + ".new", "w") as f:
    f.write(f"{child} {starttime}\\n")
os.replace(report + ".new", report)
code = 0
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
        with open(report, "a") as f:
            f.write(f"{code}\\n")
        print(f"vastsim reaper: sshd exited, status {code}", file=sys.stderr, flush=True)
sys.exit(code if code >= 0 else 128 - code)
"""


class SshHostError(Exception):
    """An instance's sshd could not be started or stopped; the message holds the facts."""


@dataclass(frozen=True)
class _Leader:
    """A running boot: sshd (sh before its exec), and unshare or the reaper above it."""

    pid: int
    starttime: str
    outer: int  # unshare (root) or the reaper (fallback): sshd's parent, outside the instance
    outer_starttime: str
    mntns: str  # "mnt:[inode]" in namespace mode, "" in the fallback

    def dump(self) -> str:
        return (f"{self.pid} {self.starttime} {self.outer} {self.outer_starttime} "
                f"{self.mntns or '-'}\n")

    @classmethod
    def load(cls, text: str) -> _Leader:
        pid, starttime, outer, outer_starttime, mntns = text.split()
        return cls(int(pid), starttime, int(outer), outer_starttime, mntns.strip("-"))


class SshHost:
    """One instance's OpenSSH server (and its boot script) in a private mount namespace."""

    def __init__(
        self,
        instance_id: int,
        root: Path,
        env: dict[str, str],
        port: int,
        *,
        isolate: bool | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.root = Path(root).absolute()
        self.env = dict(env)
        self.port = port
        # Namespaces need root; isolate=False lets tests run the fallback as root too.
        self.isolate = os.geteuid() == 0 if isolate is None else isolate
        if self.isolate and os.geteuid() != 0:
            raise SshHostError("isolate=True needs root (mount namespaces and bind mounts)")
        _check_env(self.env)
        self.ssh_dir = self.root / "ssh"
        self.host_key = self.ssh_dir / "ssh_host_ed25519_key"
        self.authorized_keys = self.ssh_dir / "authorized_keys"
        self.config_path = self.ssh_dir / "sshd_config"
        self.log_path = self.ssh_dir / "sshd.log"
        self.pid_file = self.ssh_dir / "sshd.pid"
        self.leader_file = self.ssh_dir / "leader"
        self.child_file = self.ssh_dir / "boot-child"  # the reaper's report (fallback only)
        self.onstart_log = self.root / "onstart.log"
        self._proc: subprocess.Popen[bytes] | None = None  # unshare or the reaper
        self._ns_fd: int | None = None  # holds the namespace so its inode can't be reused
        self._log_offset = 0
        for d in (self.root / "app", self.root / "work"):
            d.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        (self.root / "tmp").chmod(0o1777)  # a container's own /tmp, gone with the instance
        (self.root / "home").mkdir(mode=0o700, exist_ok=True)
        self.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.host_key.exists():
            _run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C",
                  f"vastsim-{instance_id}", "-f", str(self.host_key)])
        if not self.authorized_keys.exists():
            self.set_authorized_keys([])
        self._leader = self._adopt()

    # --- facts for the instance record -------------------------------------------------------

    @staticmethod
    def free_port() -> int:
        """A port free right now on 127.0.0.1.

        Racy like every bind-to-0 trick: another process may take it before sshd binds. boot()
        then fails with sshd's "Address already in use" in the error.
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    @property
    def host_key_pub(self) -> str:
        """``ssh-ed25519 AAAA...`` without the comment, ready for a known_hosts line."""
        kind, blob, *_ = self.host_key.with_suffix(".pub").read_text().split()
        return f"{kind} {blob}"

    @property
    def user(self) -> str:
        """The login user: root in namespace mode (as on vast.ai), else whoever runs sshd."""
        return pwd.getpwuid(os.geteuid()).pw_name

    @property
    def app_dir(self) -> str:
        return str(APP) if self.isolate else str(self.root / "app")

    @property
    def work_dir(self) -> str:
        return str(WORK) if self.isolate else str(self.root / "work")

    # --- keys ----------------------------------------------------------------------------------

    def set_authorized_keys(self, keys: list[str]) -> None:
        """Replace authorized_keys; sshd rereads it on every login, so no restart is needed."""
        lines = [_one_line(k) for k in keys]
        _write_private(self.authorized_keys, "".join(f"{line}\n" for line in lines))

    def add_authorized_key(self, key: str) -> None:
        """Append ``key`` unless the same key (type and blob; comment ignored) is there."""
        line = _one_line(key)
        keys = [k for k in self.authorized_keys.read_text().splitlines() if k.strip()]
        if _key_id(line) not in {_key_id(k) for k in keys}:
            self.set_authorized_keys([*keys, line])

    # --- lifecycle -----------------------------------------------------------------------------

    def boot(self, onstart: str | None, sshd_delay: float = 0.0) -> None:
        """Start the instance: binds, onstart in the background, then sshd.

        With ``sshd_delay`` > 0 sshd starts listening only after that many seconds (SSH refusing
        for a while after the instance is running) and boot() returns at once. Otherwise it
        returns when sshd answers with an SSH banner. A failed boot leaves no process behind.
        """
        if sshd_delay < 0:
            raise ValueError(f"sshd_delay must be >= 0, got {sshd_delay!r}")
        if self.alive():
            raise SshHostError(f"instance {self.instance_id}: sshd already running "
                               f"(pid {self.pid}, port {self.port})")
        self.kill()  # leftovers of an earlier boot, e.g. onstart outliving a crashed sshd
        self._prepare_host()
        _write_private(self.config_path, self._sshd_config())
        for stale in (self.pid_file, self.child_file):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        argv = self._argv(onstart or "", sshd_delay)
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                env=self._process_env(), start_new_session=True, close_fds=True)
        try:
            pid, starttime, mntns = self._wait_child()
            self._leader = _Leader(pid, starttime, self._proc.pid,
                                   _starttime(self._proc.pid) or "", mntns)
            self.leader_file.write_text(self._leader.dump())
            if sshd_delay == 0:
                self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def alive(self) -> bool:
        """True while sshd runs (or sh, waiting out sshd_delay before it execs sshd)."""
        leader = self._leader
        return leader is not None and _starttime(leader.pid) == leader.starttime

    @property
    def pid(self) -> int | None:
        """sshd's pid as the host sees it, while it runs."""
        return self._leader.pid if self._leader is not None and self.alive() else None

    def kill(self) -> None:
        """The machine dies: SIGKILL sshd, sessions, onstart and all they started. Idempotent."""
        if left := self._signal_until_gone(signal.SIGKILL, KILL_TIMEOUT):
            raise SshHostError(f"instance {self.instance_id}: processes {left} "
                               f"still there {KILL_TIMEOUT} s after SIGKILL")
        self._forget()

    def stop(self) -> None:
        """Clean shutdown: SIGTERM everything, a short grace, then kill(). Idempotent."""
        self._signal_until_gone(signal.SIGTERM, STOP_GRACE)
        self.kill()

    def destroy(self) -> None:
        """stop(), then remove everything under root (keys and the instance's /app, /work)."""
        self.stop()
        shutil.rmtree(self.root)

    # --- starting ------------------------------------------------------------------------------

    def _prepare_host(self) -> None:
        """Mount points and sshd's privilege-separation dir; empty dirs, made only if missing."""
        if self.isolate:
            for d in (APP, WORK, SSH_MOUNT):
                d.mkdir(parents=True, exist_ok=True)
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)

    def _sshd_config(self) -> str:
        ssh = SSH_MOUNT if self.isolate else self.ssh_dir  # where sshd sees root/ssh
        env = " ".join(_quote(f"{k}={v}") for k, v in self._env().items())
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {ssh / self.host_key.name}",
            f"AuthorizedKeysFile {ssh / self.authorized_keys.name}",
            f"PidFile {ssh / self.pid_file.name}",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "Subsystem sftp internal-sftp",
            f"SetEnv {env}",
        ]
        if _has_penalties(self.host_key):
            # OpenSSH >= 9.8 blocks addresses after failed or probe-only connections; vastsim
            # clients all come from 127.0.0.1 and probe on purpose.
            lines.append("PerSourcePenalties no")
        return "".join(f"{line}\n" for line in lines)

    def _argv(self, onstart: str, sshd_delay: float) -> list[str]:
        config = (SSH_MOUNT if self.isolate else self.ssh_dir) / self.config_path.name
        sshd = [sshd_path(), "-D", "-e", "-f", str(config)]
        delay = f"{sshd_delay:.3f}" if sshd_delay > 0 else "0"
        pairs = bind_order([(self.ssh_dir, SSH_MOUNT), (self.root / "app", APP),
                            (self.root / "work", WORK), (self.root / "tmp", Path("/tmp")),
                            (self.root / "home", _login_home())]
                           ) if self.isolate else []
        script = ["sh", "-c", _BOOT_SCRIPT, "vastsim-boot", str(self.onstart_log), onstart,
                  delay, str(len(pairs)), *(str(p) for pair in pairs for p in pair), *sshd]
        if self.isolate:
            return ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                    "--kill-child", "--mount-proc", *script]
        return [sys.executable, "-c", _REAPER, str(self.child_file), *script]

    @property
    def home(self) -> str:
        """The sessions' HOME: the login user's own path, bound to root/home as root."""
        return str(_login_home()) if self.isolate else str(self.root / "home")

    def _env(self) -> dict[str, str]:
        """What sessions get through SetEnv, on top of sshd's own USER, PATH...; HOME only
        without namespaces, where the login user's real home would show through."""
        home = {} if self.isolate else {"HOME": self.home}
        return {**self.env, **home, "APP_DIR": self.app_dir, "WORK_DIR": self.work_dir}

    def _process_env(self) -> dict[str, str]:
        """Environment of sh, onstart and sshd itself (sshd doesn't pass it on to sessions)."""
        return {"PATH": BASE_PATH, "HOME": self.home, "LANG": "C.UTF-8", **self._env()}

    def _wait_child(self) -> tuple[int, str, str]:
        """sh (later sshd) under unshare or the reaper: its pid, start time and mount namespace.

        As root it is unshare's only child (orphans go to it, pid 1 of the namespace), and the
        namespace is held open by fd, so its inode number can't be handed to another instance
        while kill() still compares against it. Without namespaces the reaper names it.
        """
        assert self._proc is not None
        host_ns = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._error("exited during boot", self._proc.returncode)
            if not self.isolate and (report := self._reaper_report()):
                return report[0], report[1], ""
            for pid in _children(self._proc.pid) if self.isolate else ():
                with contextlib.suppress(OSError):
                    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
                    ns = os.readlink(f"/proc/{pid}/ns/mnt")  # read after open: fd is this ns
                    if ns != host_ns:
                        self._ns_fd = fd
                        return pid, _starttime(pid) or "", ns
                    os.close(fd)
            time.sleep(POLL_INTERVAL)
        raise self._error(f"no child process after {START_TIMEOUT} s", None)

    def _reaper_report(self) -> tuple[int, str, int | None] | None:
        """What the reaper wrote: its child's pid and start time, and its exit code once known."""
        try:
            lines = self.child_file.read_text().split("\n")
            pid, starttime = lines[0].split()
            code = int(lines[1]) if len(lines) > 1 and lines[1] else None
            return int(pid), starttime, code
        except (OSError, ValueError):
            return None

    def _boot_exit_code(self) -> int | None:
        """sshd's exit code after a failed boot: unshare's or the reaper's, or, while onstart
        keeps the reaper alive, what the reaper reported."""
        if self._proc is not None and (code := self._proc.poll()) is not None:
            return code
        report = None if self.isolate else self._reaper_report()
        return report[2] if report else None

    def _wait_ready(self) -> None:
        """Ready = this sshd wrote its pid file (so it has bound the port) and sends a banner."""
        assert self._leader is not None
        own_pid = 1 if self.isolate else self._leader.pid  # the pid file holds sshd's pid in its ns
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise self._error("exited during boot", self._boot_exit_code())
            if self._pid_file_pid() == own_pid and _banner(self.port):
                return
            time.sleep(POLL_INTERVAL)
        raise self._error(f"sshd gave no SSH banner on 127.0.0.1:{self.port} "
                          f"within {READY_TIMEOUT} s", None)

    def _pid_file_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # --- stopping ------------------------------------------------------------------------------

    def _signal_until_gone(self, sig: signal.Signals, within: float) -> list[int]:
        """Signal the instance's processes until none is left; returns those left at the end.

        unshare or the reaper is spared: it exits by itself once its descendants are gone and
        must live until then to reap them. Killed first, it would leave zombies behind.
        """
        outer = self._leader.outer if self._leader is not None else 0
        signalled: set[int] = set()
        deadline = time.monotonic() + within
        while (members := self._members()) and time.monotonic() < deadline:
            targets = [p for p in members
                       if p != outer and (sig == signal.SIGKILL or p not in signalled)]
            _signal_all(targets, sig, self._is_member)
            signalled.update(targets)
            time.sleep(POLL_INTERVAL)
        return members

    def _members(self) -> list[int]:
        """Every live process of this instance, unshare or the reaper included."""
        if self._proc is not None:
            self._proc.poll()  # reap our child once it has exited, so it is not counted
        if self._leader is None:
            return []
        if self._leader.mntns:
            return [pid for pid in _all_pids() if self._is_member(pid)]
        return _descendants(self._outer_or_leader())

    def _is_member(self, pid: int) -> bool:
        leader = self._leader
        if leader is None:
            return False
        if leader.mntns:
            try:
                return os.readlink(f"/proc/{pid}/ns/mnt") == leader.mntns
            except OSError:
                return False  # gone, or a zombie (which holds no namespace)
        return pid in _descendants(self._outer_or_leader())

    def _outer_or_leader(self) -> int:
        """The reaper, or sshd if the reaper is gone (it was killed from outside)."""
        assert self._leader is not None
        if _starttime(self._leader.outer) == self._leader.outer_starttime:
            return self._leader.outer
        return self._leader.pid if self.alive() else 0

    def _forget(self) -> None:
        """All processes are gone: reap, release the namespace, drop the leader record."""
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=KILL_TIMEOUT)
            self._proc = None
        if self._ns_fd is not None:
            os.close(self._ns_fd)
            self._ns_fd = None
        self._leader = None
        with contextlib.suppress(FileNotFoundError):
            self.leader_file.unlink()

    def _adopt(self) -> _Leader | None:
        """A boot left by an earlier vastsim process, if still running (so kill() finds it)."""
        try:
            leader = _Leader.load(self.leader_file.read_text())
        except (OSError, ValueError):
            return None
        if (_starttime(leader.pid) != leader.starttime
                and _starttime(leader.outer) != leader.outer_starttime):
            return None  # that boot is over; its namespace inode may have been reused since
        if leader.mntns:
            for pid in (leader.pid, leader.outer):
                with contextlib.suppress(OSError):
                    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
                    if os.readlink(f"/proc/{pid}/ns/mnt") == leader.mntns:
                        self._ns_fd = fd
                        break
                    os.close(fd)
        return leader

    def _error(self, what: str, exit_code: int | None) -> SshHostError:
        code = "exit code unknown" if exit_code is None else f"exit code {exit_code}"
        argv = self._proc.args if self._proc is not None else []
        command = subprocess.list2cmdline(argv) if isinstance(argv, list) else str(argv)
        return SshHostError(
            f"instance {self.instance_id}: {what} ({code})\n"
            f"command: {command}\n"
            f"sshd log {self.log_path} (last {LOG_TAIL_LINES} lines):\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError as exc:
            return f"  <unreadable: {exc}>"
        return "\n".join(f"  {line}" for line in lines[-LOG_TAIL_LINES:]) or "  <empty>"


def _check_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"env name {key!r} is not a shell identifier")
        if "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"env {key}: line breaks and NUL can't pass through sshd SetEnv")


def _quote(arg: str) -> str:
    """One SetEnv word in sshd_config syntax: double quotes, backslash escapes."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_private(path: Path, text: str) -> None:
    """Write 0600 via rename, so sshd never reads a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _one_line(key: str) -> str:
    line = key.strip()
    if not line or "\n" in line or "\r" in line:
        raise ValueError(f"an authorized key is one non-empty line, got {key!r}")
    return line


def _key_id(line: str) -> str:
    """Key type and blob, skipping any options in front (``from="..." ssh-ed25519 AAAA``)."""
    parts = line.split()
    for i, part in enumerate(parts[:-1]):
        if part.startswith(("ssh-", "ecdsa-", "sk-")):
            return f"{part} {parts[i + 1]}"
    return line


_penalties: dict[str, bool] = {}


def _has_penalties(host_key: Path) -> bool:
    """Whether this sshd knows PerSourcePenalties (OpenSSH >= 9.8); asked once per process."""
    sshd = sshd_path()
    if sshd not in _penalties:
        try:
            probe = subprocess.run(
                [sshd, "-t", "-f", "/dev/null", "-o", f"HostKey={host_key}",
                 "-o", "PerSourcePenalties=no"], capture_output=True, check=False)
        except OSError as exc:
            raise SshHostError(f"cannot run sshd {sshd}: {exc}") from exc
        _penalties[sshd] = probe.returncode == 0
    return _penalties[sshd]


def sshd_path() -> str:
    """The sshd to run: ``$VASTSIM_SSHD`` or /usr/sbin/sshd."""
    return os.environ.get(SSHD_ENV) or SSHD


def check_tools() -> None:
    """Refuse to serve without OpenSSH: every instance is a real sshd (message says the fix)."""
    sshd = sshd_path()
    if not os.path.isabs(sshd):
        raise SshHostError(f"{SSHD_ENV}={sshd!r}: sshd must be given by absolute path")
    if not (os.path.isfile(sshd) and os.access(sshd, os.X_OK)):
        where = f" ({SSHD_ENV} is set)" if os.environ.get(SSHD_ENV) else ""
        raise SshHostError(f"sshd not found at {sshd}{where}: every vastsim instance is a real "
                           "OpenSSH sshd. Install it: apt-get install openssh-server")
    hidden = next((d for d in (Path("/tmp"), APP, WORK) if Path(sshd).is_relative_to(d)), None)
    if hidden is not None and os.geteuid() == 0:
        raise SshHostError(f"{SSHD_ENV}={sshd}: {hidden} is hidden inside instances (each "
                           "instance binds its own over it), so sshd cannot start there")
    if shutil.which(SSH_KEYGEN) is None:
        raise SshHostError(f"{SSH_KEYGEN} not found on PATH: vastsim makes each instance's "
                           "host key with it. Install it: apt-get install openssh-client")


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process."""
    found = {}
    for pid in _all_pids():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(pid)
            if fields[0] != "Z":
                found[pid] = int(fields[1])
    return found


def _children(ppid: int) -> list[int]:
    return [pid for pid, parent in _parents().items() if parent == ppid]


def _descendants(top: int) -> list[int]:
    """``top`` and everything below it, if ``top`` is alive."""
    parents = _parents()
    if top not in parents:
        return []
    found, frontier = [top], [top]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): [0] state, [1] ppid."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def _starttime(pid: int) -> str | None:
    """Start time in clock ticks since boot, None if gone or a zombie.

    With the pid it names one process for good, even after the pid is reused.
    """
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _signal_all(pids: list[int], sig: signal.Signals, still_member: Callable[[int], bool]) -> None:
    """Signal through pidfds so a pid reused between listing and signalling is never hit."""
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # already gone
        try:
            if still_member(pid):
                signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SshHostError(f"command: {subprocess.list2cmdline(argv)}\n"
                           f"exit code {proc.returncode}\n{proc.stderr.strip()}")
