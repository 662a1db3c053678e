"""The dead-man switch: the pure parts, then each trigger on a vastsim instance, with times
compressed to seconds. Each trigger must end the instance's billing (vastsim's ledger) about when
it should: GPU seconds billed = time from boot to the watchdog's DELETE.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.errors import ConfigError
from providers.lifecycle import InstanceSpec
from providers.settings import (
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_LEASE_TIMEOUT_S,
    DEFAULT_MAX_LIFETIME_S,
    REPLACE_KEYS,
    parse_settings,
    problems,
)
from remote.batch import Task, run_batch
from remote.ssh import Connection, Target
from remote.watchdog import (
    _SCRIPT,
    MAX_ONSTART_CHARS,
    MAX_USER_ONSTART_CHARS,
    STATE_DIR,
    Deadman,
    onstart_with_watchdog,
    parse_duration,
)
from vastsim.testing import VastSim

ROOT = Path(__file__).resolve().parents[2]
CHECK_S = 1  # the watchdog's check interval in these tests
SLACK_S = 2.5  # one check interval, whole-second clocks, the DELETE and the ledger's poll
# Whole-second clocks also let a trigger fire up to a second early.
RUN_DIRECT = '#!/bin/sh\nexec "$@"\n'

Rent = Callable[..., tuple[int, Target]]


# --- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("45s", 45), ("30m", 1800), ("12h", 43200), ("1d", 86400), (" 2H ", 7200),
    ("1.5m", 90), ("0", 0), (600, 600), (2.5, 2),
])
def test_parse_duration(text: str | float, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "5 min", "-3", "1h30m", "12w", True])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_check_interval_follows_the_shortest_trigger() -> None:
    assert Deadman(DEFAULT_MAX_LIFETIME_S, DEFAULT_IDLE_TIMEOUT_S,
                   DEFAULT_LEASE_TIMEOUT_S).interval_s == 30
    assert Deadman(4, 0, 0).interval_s == 1
    assert Deadman(0, 300, 0).interval_s == 30
    assert Deadman(0, 100, 0).interval_s == 10
    assert Deadman(5, 5, 5, check_s=0).interval_s == 1


def test_onstart_is_the_installer_then_the_users_script() -> None:
    deadman = Deadman(3600, 600, 120)
    full = onstart_with_watchdog("echo mine", deadman)
    assert full is not None and full.endswith("\necho mine")
    assert 'watchdog.sh" 3600 600 12 120 ' in full
    assert onstart_with_watchdog("echo mine", Deadman(0, 0, 0)) == "echo mine"
    assert onstart_with_watchdog(None, Deadman(0, 0, 0)) is None
    assert MAX_USER_ONSTART_CHARS > 1500  # room left for the user's own onstart


def test_script_is_valid_sh(tmp_path: Path) -> None:
    onstart = onstart_with_watchdog("true", Deadman(1, 2, 3))
    assert onstart and _SCRIPT in onstart and onstart.rstrip().endswith("true")
    shells = [s for s in ("sh", "dash", "bash") if shutil.which(s)]
    assert shells, "no POSIX shell to check the script with"
    for name, text in [("watchdog.sh", _SCRIPT), ("onstart.sh", onstart)]:
        (tmp_path / name).write_text(text)
        for shell in shells:
            checked = subprocess.run([shell, "-n", str(tmp_path / name)], capture_output=True,
                                     text=True)
            assert checked.returncode == 0, f"{shell} -n {name}: {checked.stderr}"


def validate_inputs(inputs: dict) -> list[tuple[str, str]]:
    return [(e.key.split(":", 1)[-1], str(e)) for e in problems(inputs)]


def onstart_of(inputs: dict) -> str | None:
    spec = InstanceSpec(parse_settings(inputs), tag="vast-gpu:p/s/gpu", ssh_public_key="k")
    return spec.rent_body()["onstart"]


def test_stack_inputs_carry_the_switch() -> None:
    base = {"image": "img", "sshPublicKey": "ssh-ed25519 AAAA k"}
    onstart = onstart_of({**base, "onstart": "echo mine"})
    assert onstart is not None and onstart.endswith("echo mine")
    assert f'watchdog.sh" {DEFAULT_MAX_LIFETIME_S} {DEFAULT_IDLE_TIMEOUT_S} ' in onstart
    assert onstart_of({**base, "maxLifetime": 0, "idleTimeout": 0, "leaseTimeout": 0}) is None
    assert {"maxLifetime", "idleTimeout", "leaseTimeout"} <= REPLACE_KEYS

    assert validate_inputs({**base, "maxLifetime": 90, "idleTimeout": 0}) == []
    [(key, reason)] = validate_inputs({**base, "idleTimeout": -1})
    assert key == "idleTimeout" and "duration" in reason
    [(key, reason)] = validate_inputs({**base, "onstart": "x" * 3000})
    assert key == "onstart" and f"vast.ai takes {MAX_ONSTART_CHARS}" in reason
    assert validate_inputs({**base, "onstart": "x" * 3000, "maxLifetime": 0, "idleTimeout": 0,
                            "leaseTimeout": 0}) == []


def test_a_bad_duration_in_the_stack_config_names_the_key() -> None:
    raw = {"vast-gpu:image": "img", "vast-gpu:maxLifetime": "12h"}
    assert parse_settings(raw).max_lifetime_s == 43200
    with pytest.raises(ConfigError, match=r"vast-gpu:idleTimeout = 'ten minutes': .*30m"):
        parse_settings({**raw, "vast-gpu:idleTimeout": "ten minutes"})


# --- on vastsim ------------------------------------------------------------------------------


# The instance's private /tmp is root/tmp in vastsim's state dir, and it goes with the
# instance on destroy: so the log is read as it goes and the last text seen is kept.
_STATE: dict[int, Path] = {}
_SEEN: dict[int, str] = {}


@pytest.fixture
def watched(rent: Rent, vastsim: VastSim) -> Callable[..., tuple[int, Target]]:
    """rent_watched(lifetime, idle, lease) -> a vastsim instance running the watchdog."""

    def make(lifetime: int, idle: int, lease: int) -> tuple[int, Target]:
        deadman = Deadman(lifetime, idle, lease, check_s=CHECK_S)
        instance_id, target = rent(onstart=onstart_with_watchdog(None, deadman))
        [root] = [i["root"] for i in vastsim.internals() if i["id"] == instance_id]
        _STATE[instance_id] = Path(root) / STATE_DIR.lstrip("/")
        wait_for(lambda: "watching:" in watchdog_log(instance_id), 5, "the watchdog to start")
        return instance_id, target

    return make


def state_dir(instance_id: int) -> Path:
    """The instance's watchdog dir, seen from the host (while the instance exists)."""
    return _STATE[instance_id]


def watchdog_log(instance_id: int) -> str:
    with contextlib.suppress(FileNotFoundError):
        _SEEN[instance_id] = (state_dir(instance_id) / "watchdog.log").read_text()
    return _SEEN.get(instance_id, "")


def wait_for(done: Callable[[], object], within: float, what: str) -> float:
    """Poll until done() is true; the monotonic time it became so."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if done():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"waited {within} s for {what}")


def wait_destroyed(vastsim: VastSim, instance_id: int, within: float) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        watchdog_log(instance_id)  # keep the last words before the files go
        if instance_id not in vastsim.billing_now():
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"waited {within} s for instance {instance_id} to stop billing")


def stays_billing(vastsim: VastSim, target: Target, instance_id: int, seconds: float) -> None:
    """Still billing at every look for `seconds` (a negative claim needs the whole wait)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert instance_id in vastsim.billing_now(), watchdog_log(instance_id)
        time.sleep(0.2)


def billed_gpu_seconds(vastsim: VastSim, instance_id: int) -> float:
    [row] = [r for r in vastsim.ledger()["instances"] if r["id"] == instance_id]
    assert not row["billing_gpu"] and not row["billing_storage"]
    return float(row["gpu_seconds"])


@pytest.mark.sshd
def test_max_lifetime_fires_even_with_a_session_open(
    watched: Callable[..., tuple[int, Target]], vastsim: VastSim
) -> None:
    instance_id, target = watched(3, 0, 0)
    with Connection(target) as conn:
        # The account's key is nowhere on the instance: not in any process's environment,
        # not in the watchdog's files; the instance holds only its own key.
        where = f"/proc/[0-9]*/environ {STATE_DIR}"
        probe = conn.run(f'echo "$CONTAINER_API_KEY"; grep -rlsF -- "{vastsim.api_key}" {where}',
                         check=False)
        own_key = probe.stdout.splitlines()[0]
        assert own_key and own_key != vastsim.api_key
        assert probe.exit_code == 1, probe.stdout  # grep found nothing
        wait_destroyed(vastsim, instance_id, 3 + SLACK_S + 2)
    assert 3 - 1 <= billed_gpu_seconds(vastsim, instance_id) <= 3 + SLACK_S
    assert "firing: max lifetime of 3s reached" in watchdog_log(instance_id)


@pytest.mark.sshd
def test_idle_fires_only_once_no_session_is_left(
    watched: Callable[..., tuple[int, Target]], vastsim: VastSim
) -> None:
    instance_id, target = watched(0, 2, 0)
    with Connection(target) as conn:
        conn.run("true")
        stays_billing(vastsim, target, instance_id, 4)  # twice the idle time, with a session open
    closed = time.monotonic()
    gone = wait_destroyed(vastsim, instance_id, 2 + SLACK_S + 2)
    assert gone - closed <= 2 + SLACK_S  # not early: stays_billing above
    assert "firing: idle for 2s" in watchdog_log(instance_id)


@pytest.mark.sshd
def test_a_renewed_lease_keeps_a_long_task_alive(
    watched: Callable[..., tuple[int, Target]], vastsim: VastSim, tmp_path: Path
) -> None:
    instance_id, target = watched(0, 0, 2)
    lease_file = Path(state_dir(instance_id), "lease")
    with Connection(target) as conn:
        conn.run("cat > /app/run-direct && chmod +x /app/run-direct", stdin=RUN_DIRECT.encode())
        result = run_batch(conn, [Task("sleep 6", 1)], logs_dir=tmp_path / "logs",
                           out=io.StringIO())
        assert result.ok  # 6 s of task on a 2 s lease
        assert not lease_file.exists()  # released: idle time governs again
    assert instance_id in vastsim.billing_now()
    assert "firing" not in watchdog_log(instance_id)


DRIVER = """
import sys
from pathlib import Path
from remote.batch import Task, run_batch
from remote.ssh import Connection, Target
host, port, key, known, logs, run_direct = sys.argv[1:]
with Connection(Target(host, int(port), Path(key), Path(known))) as conn:
    conn.run("cat > /app/run-direct && chmod +x /app/run-direct", stdin=run_direct.encode())
    run_batch(conn, [Task("sleep 60", 1)], logs_dir=Path(logs))
"""


@pytest.mark.sshd
def test_sigkill_of_the_local_side_lets_the_lease_lapse(
    watched: Callable[..., tuple[int, Target]], vastsim: VastSim, tmp_path: Path
) -> None:
    instance_id, target = watched(0, 0, 2)
    lease_file = Path(state_dir(instance_id), "lease")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, target.host, str(target.port), str(target.key_path),
         str(target.known_hosts), str(tmp_path / "logs"), RUN_DIRECT],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )
    try:
        wait_for(lambda: (any((tmp_path / "logs").glob("*-sleep.log")) and lease_file.exists())
                 or driver.poll() is not None, 15, "the driver's batch to start under a lease")
        assert driver.poll() is None, driver.communicate()[0].decode(errors="replace")
        stays_billing(vastsim, target, instance_id, 3)  # renewed past its 2 s
        driver.kill()
        killed = time.monotonic()
        driver.wait(5)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(5)
    gone = wait_destroyed(vastsim, instance_id, 2 + SLACK_S + 2)
    assert 0.3 <= gone - killed <= 2 + SLACK_S
    assert "firing: lease lapsed" in watchdog_log(instance_id)
