"""SshHost against real OpenSSH sshd and a real paramiko client: isolation, env, keys, lifecycle.

Namespace tests need root (they are what vastsim runs as root); the fallback tests run the
no-namespace mode with ``isolate=False``, so they run as root too.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from tests.vastsim.helpers import pids_in_mount_ns
from vastsim.sshhost import SshHost, SshHostError, bind_order

pytestmark = pytest.mark.sshd

WAIT_S = 10.0
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")

ENV = {
    "CONTAINER_ID": "4242",
    "CONTAINER_API_KEY": "k3y-4242",
    "VAST_CONTAINERLABEL": "C.4242",
    "TRICKY": 'two words "quoted" back\\slash $HOME #hash it\'s',
}


@pytest.fixture
def keygen(tmp_path: Path) -> Callable[[str], tuple[Path, str]]:
    """Make an ed25519 client key: (private key path, public key line)."""

    def make(name: str) -> tuple[Path, str]:
        path = tmp_path / "keys" / name
        path.parent.mkdir(exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                        "-f", str(path)], check=True)
        return path, path.with_suffix(".pub").read_text().strip()

    return make


@pytest.fixture
def key(keygen: Callable[[str], tuple[Path, str]]) -> tuple[Path, str]:
    return keygen("client")


@pytest.fixture
def make_host(tmp_path: Path, key: tuple[Path, str]) -> Iterator[Callable[..., SshHost]]:
    """SshHosts with the client key authorized; each is killed, and checked empty, after."""
    hosts: list[SshHost] = []

    def make(instance_id: int = 4242, *, isolate: bool | None = None,
             env: dict[str, str] | None = None) -> SshHost:
        host = SshHost(instance_id, tmp_path / f"i{instance_id}",
                       ENV if env is None else env, SshHost.free_port(), isolate=isolate)
        host.set_authorized_keys([key[1]])
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.kill()
        assert not host.alive()


def connect(host: SshHost, key_path: Path) -> paramiko.SSHClient:
    """Log in with strict host-key checking against the key the host advertises."""
    client = paramiko.SSHClient()
    kind, blob = host.host_key_pub.split()
    client.get_host_keys().add(f"[127.0.0.1]:{host.port}", kind,
                               paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", host.port, host.user, key_filename=str(key_path),
                   look_for_keys=False, allow_agent=False, timeout=5, banner_timeout=5)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    """(exit code, stdout + stderr); output is read before the exit status (paramiko's rule)."""
    _, stdout, stderr = client.exec_command(command, timeout=WAIT_S)
    out = stdout.read().decode() + stderr.read().decode()
    return stdout.channel.recv_exit_status(), out


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout} s")
        time.sleep(0.02)


def host_mounts_of(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if str(path) in line]


# --- namespace mode -------------------------------------------------------------------------


@needs_root
def test_two_hosts_see_their_own_app_and_work(make_host, key) -> None:
    host_app_before = sorted(os.listdir("/app")) if Path("/app").exists() else []
    a, b = make_host(1), make_host(2)
    a.boot(None)
    b.boot(None)
    with connect(a, key[0]) as ca, connect(b, key[0]) as cb:
        assert run(ca, "echo from-a > /app/mine && echo work-a > /work/w") == (0, "")
        assert run(cb, "ls -A /app /work") == (0, "/app:\n\n/work:\n")
        assert run(ca, "cat /app/mine /work/w") == (0, "from-a\nwork-a\n")
    assert (a.root / "app" / "mine").read_text() == "from-a\n"
    assert not (b.root / "app" / "mine").exists()
    assert sorted(os.listdir("/app")) == host_app_before  # the host's /app is untouched
    assert not host_mounts_of(a.root / "app")  # the binds live in the namespace only
    assert any(str(a.root / "app") in line
               for line in Path(f"/proc/{a.pid}/mountinfo").read_text().splitlines())


@needs_root
@pytest.mark.parametrize("under", ["/work", "/app"])
def test_a_root_under_work_or_app_still_boots(key, under) -> None:
    """A checkout in /work (or /app): binding /work must not hide the instance's own tmp."""
    Path(under).mkdir(exist_ok=True)  # a mount point vastsim makes itself when missing
    parent = Path(tempfile.mkdtemp(prefix="vastsim-test-", dir=under))
    host = SshHost(4243, parent / "i", ENV, SshHost.free_port(), isolate=True)
    try:
        host.set_authorized_keys([key[1]])
        host.boot(None)
        with connect(host, key[0]) as client:
            assert run(client, "echo t > /tmp/t && echo w > /work/w && echo a > /app/a "
                               "&& cat /tmp/t /work/w /app/a") == (0, "t\nw\na\n")
        assert [(host.root / d / f).read_text() for d, f in
                (("tmp", "t"), ("work", "w"), ("app", "a"))] == ["t\n", "w\n", "a\n"]
    finally:
        host.kill()
        shutil.rmtree(parent)


@needs_root
def test_session_env_and_login_user(make_host, key) -> None:
    host = make_host()
    host.boot(None)
    with connect(host, key[0]) as client:
        rc, out = run(client, 'echo "$CONTAINER_ID|$CONTAINER_API_KEY|$VAST_CONTAINERLABEL"; '
                              'echo "$TRICKY"; echo "$APP_DIR $WORK_DIR"; id -un')
    assert rc == 0
    assert out.splitlines() == ["4242|k3y-4242|C.4242", ENV["TRICKY"], "/app /work", "root"]


@needs_root
def test_onstart_runs_inside_the_namespace(make_host, key) -> None:
    host = make_host()
    host.boot('echo "$CONTAINER_ID $(pwd)" > /work/onstart.txt; echo started; sleep 300')
    done = host.root / "work" / "onstart.txt"
    wait_for("onstart wrote /work/onstart.txt", done.exists)
    assert done.read_text() == "4242 /\n"
    with connect(host, key[0]) as client:
        assert run(client, "cat /work/onstart.txt") == (0, "4242 /\n")
    wait_for("onstart.log has onstart's output",
             lambda: host.onstart_log.read_text() == "started\n")


@needs_root
def test_sessions_see_only_their_instance_processes(make_host, key) -> None:
    host = make_host()
    host.boot("sleep 300")
    with connect(host, key[0]) as client:
        rc, out = run(client, "ps -e -o pid=,comm=")
    assert rc == 0
    assert out.split()[:2] == ["1", "sshd"]  # sshd is the pid namespace's init
    assert "sleep" in out.split()


@needs_root
@pytest.mark.parametrize("how", ["kill", "stop"])
def test_kill_and_stop_leave_no_process_and_no_mount(make_host, key, how) -> None:
    host = make_host()
    host.boot("sleep 300 & sleep 301")
    with connect(host, key[0]) as client:
        # a detached process that outlives its session, like `nohup train.py &`
        assert run(client, "setsid sleep 302 >/dev/null 2>&1 < /dev/null &") == (0, "")
    assert host.pid is not None
    ns = os.readlink(f"/proc/{host.pid}/ns/mnt")
    wait_for("sessions and onstart running", lambda: len(pids_in_mount_ns(ns)) >= 6)
    getattr(host, how)()
    assert pids_in_mount_ns(ns) == []
    assert not host.alive() and host.pid is None
    assert not host_mounts_of(host.root)
    getattr(host, how)()  # idempotent
    host.kill()


# --- both modes -----------------------------------------------------------------------------


MODES = [pytest.param(None, marks=needs_root, id="namespace"),
         pytest.param(False, id="fallback")]


@pytest.mark.parametrize("isolate", MODES)
def test_sessions_have_a_home_of_their_own_not_the_hosts(make_host, key, isolate) -> None:
    """A container's home is its own: the host user's start-up files are never run there (a
    ~/.bashrc that runs `pyenv rehash` made every session wait on the host's pyenv lock) and
    what a session writes to ~ stays with its instance."""
    host_home = Path(os.path.expanduser("~"))
    marker = host_home / f".vastsim-host-only-{os.getpid()}"
    theirs = f".instance-only-{os.getpid()}"
    marker.write_text("the host's")
    try:
        a, b = make_host(1, isolate=isolate), make_host(2, isolate=isolate)
        a.boot(None)
        b.boot(None)
        with connect(a, key[0]) as ca, connect(b, key[0]) as cb:
            rc, listing = run(ca, f'ls -A "$HOME"; echo mine > "$HOME/{theirs}"')
            assert rc == 0 and marker.name not in listing, listing
            assert run(cb, f'cat "$HOME/{theirs}" 2>/dev/null || echo absent') == (0, "absent\n")
            assert run(ca, f'cat ~/{theirs}') == (0, "mine\n")
        assert not (host_home / theirs).exists()
    finally:
        marker.unlink()
        (host_home / theirs).unlink(missing_ok=True)


@pytest.mark.parametrize("isolate", MODES)
def test_authorized_keys_decide_who_logs_in(make_host, key, keygen, isolate) -> None:
    host = make_host(isolate=isolate)
    other_path, other_pub = keygen("other")
    host.boot(None)
    with pytest.raises(paramiko.AuthenticationException):
        connect(host, other_path)
    host.add_authorized_key(other_pub)
    host.add_authorized_key(other_pub.rsplit(" ", 1)[0] + " same-key-new-comment")
    assert host.authorized_keys.read_text().count(other_pub.split()[1]) == 1
    with connect(host, other_path) as client:
        assert run(client, "true") == (0, "")
    host.set_authorized_keys([other_pub])  # replaces: the first key is out now
    with pytest.raises(paramiko.AuthenticationException):
        connect(host, key[0])


@pytest.mark.parametrize("isolate", MODES)
def test_sshd_delay_refuses_then_accepts(make_host, key, isolate) -> None:
    host = make_host(isolate=isolate)
    started = time.monotonic()
    host.boot(None, sshd_delay=1.0)
    assert time.monotonic() - started < 0.5  # boot() doesn't wait for a delayed sshd
    assert host.alive()
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        connect(host, key[0])

    def logs_in() -> bool:
        try:
            connect(host, key[0]).close()
        except paramiko.ssh_exception.NoValidConnectionsError:
            return False
        return True

    wait_for("sshd accepts logins after its delay", logs_in)
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize("isolate", MODES)
def test_stop_during_sshd_delay_is_quick(make_host, isolate) -> None:
    host = make_host(isolate=isolate)
    host.boot("sleep 300", sshd_delay=60)
    started = time.monotonic()
    host.stop()
    assert time.monotonic() - started < 1.0  # SIGTERM worked, no wait for the grace period
    assert not host.alive()


@pytest.mark.parametrize("isolate", MODES)
def test_host_key_stable_across_stop_boot_and_new_object(make_host, key, isolate) -> None:
    host = make_host(isolate=isolate)
    before = host.host_key_pub
    assert before.startswith("ssh-ed25519 AAAA")
    host.boot(None)
    host.stop()
    host.boot(None)
    assert host.host_key_pub == before
    with connect(host, key[0]) as client:  # strict check against the advertised key
        assert run(client, "true") == (0, "")
    host.stop()
    again = SshHost(host.instance_id, host.root, ENV, host.port, isolate=isolate)
    assert again.host_key_pub == before


@pytest.mark.parametrize("isolate", MODES)
def test_a_new_object_adopts_and_kills_a_running_boot(make_host, key, isolate) -> None:
    """A restarted vastsim builds new SshHosts: they must still see and end the old sshd."""
    host = make_host(isolate=isolate)
    host.boot("sleep 300")
    later = SshHost(host.instance_id, host.root, ENV, host.port, isolate=isolate)
    assert later.alive() and later.pid == host.pid
    later.kill()
    assert not host.alive()
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        connect(host, key[0])


@pytest.mark.parametrize("isolate", MODES)
def test_destroy_removes_root(make_host, isolate) -> None:
    host = make_host(isolate=isolate)
    host.boot("sleep 300")
    host.destroy()
    assert not host.root.exists()
    assert not host.alive()


@pytest.mark.parametrize("isolate", MODES)
def test_failed_boot_says_why_and_leaves_nothing(make_host, isolate) -> None:
    host = make_host(isolate=isolate)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", host.port))
        taken.listen()
        with pytest.raises(SshHostError) as caught:
            host.boot("sleep 300")
    message = str(caught.value)
    assert "exited during boot (exit code" in message
    assert "Address already in use" in message
    assert "/usr/sbin/sshd" in message  # the command
    assert not host.alive()


@pytest.mark.parametrize("isolate", MODES)
def test_a_boot_seen_late_still_names_sshd_not_onstart(make_host, isolate, monkeypatch) -> None:
    """On a loaded machine sshd can fail and be reaped before boot() first looks; onstart,
    orphaned by then, must not be taken for sshd (CI waited 10 s for a banner from it)."""
    host = make_host(isolate=isolate)
    seen_now = SshHost._wait_child

    def seen_late(self: SshHost):  # what a busy scheduler does between Popen and the first look
        time.sleep(1.0)
        return seen_now(self)

    monkeypatch.setattr(SshHost, "_wait_child", seen_late)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", host.port))
        taken.listen()
        started = time.monotonic()
        with pytest.raises(SshHostError) as caught:
            host.boot("sleep 300")
        waited = time.monotonic() - started
    assert "exited during boot (exit code 255)" in str(caught.value)  # sshd's, not unknown
    assert "Address already in use" in str(caught.value)
    assert waited < 5.0, f"boot() waited {waited:.1f} s for an sshd that was gone"
    assert not host.alive()


@pytest.mark.parametrize("isolate", MODES)
def test_boot_twice_is_refused(make_host, isolate) -> None:
    host = make_host(isolate=isolate)
    host.boot(None)
    with pytest.raises(SshHostError, match="already running"):
        host.boot(None)


def test_bad_env_is_refused_early(tmp_path) -> None:
    with pytest.raises(ValueError, match="identifier"):
        SshHost(1, tmp_path / "i", {"BAD-NAME": "x"}, 1)
    with pytest.raises(ValueError, match="line breaks"):
        SshHost(1, tmp_path / "i", {"X": "a\nb"}, 1)


# --- fallback mode --------------------------------------------------------------------------


def test_fallback_uses_root_dirs_and_leaves_nothing(make_host, key) -> None:
    host = make_host(isolate=False)
    host.boot('echo "$CONTAINER_ID" > "$WORK_DIR/onstart.txt"; sleep 300 & sleep 301')
    wait_for("onstart wrote $WORK_DIR/onstart.txt", (host.root / "work" / "onstart.txt").exists)
    with connect(host, key[0]) as client:
        rc, out = run(client, 'echo "$APP_DIR|$WORK_DIR|$CONTAINER_ID"; cat "$WORK_DIR/onstart.txt"'
                              '; setsid sleep 302 >/dev/null 2>&1 < /dev/null &')
    assert rc == 0
    assert out.splitlines() == [f"{host.root}/app|{host.root}/work|4242", "4242"]
    assert (host.app_dir, host.work_dir) == (str(host.root / "app"), str(host.root / "work"))
    members = host._members()
    assert len(members) >= 5  # reaper, sshd, onstart's sh and two sleeps, the setsid sleep
    host.stop()
    assert [p for p in members if Path(f"/proc/{p}").exists()] == []  # none left, not even zombies


@pytest.mark.parametrize("root", ["/tmp/sim/instances/7", "/work/main/.vastsim/instances/7",
                                  "/app/x/instances/7", "/srv/sim/instances/7"])
def test_no_bind_hides_the_source_of_a_later_one(root: str) -> None:
    """The state dir may lie under /work (a checkout there runs `make demo`) or /tmp (pytest):
    each target is bound only after every source it would hide."""
    r = Path(root)
    pairs = [(r / "ssh", Path("/run/vastsim/ssh")), (r / "app", Path("/app")),
             (r / "work", Path("/work")), (r / "tmp", Path("/tmp"))]
    ordered = bind_order(pairs)
    assert sorted(ordered) == sorted(pairs)
    for i, (_, target) in enumerate(ordered):
        assert not any(src.is_relative_to(target) for src, _ in ordered[i + 1:]), ordered
