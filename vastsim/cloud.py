"""The simulated cloud: account, offers, instances, their sshds, the ledger and the faults.

Every method that the API calls takes ``self.lock`` for the model and releases it before any
slow sshd work; sshd work for one instance is serialised by that instance's host lock. Lock
order is always host lock, then model lock. Each boot carries the instance's ``boot_gen``: a
stop, start, kill or destroy bumps it, so a boot that finishes late sees it is stale.

Timeline of a start (rent, start, reboot) with ``boot_seconds`` B: ``scheduling`` for the first
quarter of B, ``loading`` (sshd and onstart boot in the background) until B has passed *and*
sshd answers, then ``running``. With B = 0 the rent answer waits for the boot, so the very
first ``GET`` shows ``running`` (deterministic tests). A ticker advances the timeline, and
every API read advances it too.

State lives in ``<state_dir>/state.json`` (rewritten atomically after each change); each
instance's files (host key, authorized_keys, /app, /work) live in ``<state_dir>/instances/<id>``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from vastsim import bids
from vastsim.accounts import USER_ID, Account
from vastsim.admin import Admin
from vastsim.catalogue import Catalogue
from vastsim.errors import ApiError, StateError
from vastsim.faults import FaultBook
from vastsim.instance import LOADING_MSG, SCHEDULING_MSG, TRANSIENT, Instance
from vastsim.ledger import Meter
from vastsim.logs import LogStore
from vastsim.rentspec import MAX_LABEL, rent_spec
from vastsim.sshhost import SshHost, SshHostError

log = logging.getLogger(__name__)

STATE_VERSION = 1
FIRST_INSTANCE_ID = 13_600_001
INITIAL_CREDIT = 100.0
SCHEDULING_SHARE = 0.25  # of boot_seconds spent in "scheduling" before "loading"
TICK_S = 0.05
BOOT_WAIT_S = 30.0  # how long a zero-boot rent waits for sshd before answering anyway
REQUEST_LOG = 2000


def _no_such_instance(instance_id: int) -> ApiError:
    return ApiError.vast(404, "no_such_instance", f"Instance {instance_id} not found.")


class Cloud(Admin):
    """The whole simulated vast.ai account; thread-safe."""

    def __init__(self, state_dir: Path, *, boot_seconds: float = 0.0,
                 api_key: str | None = None, faults: Any = None,
                 account_created: datetime.date | None = None) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.state_file = self.state_dir / "state.json"
        self.boot_seconds = float(boot_seconds)
        self.lock = threading.RLock()
        self.catalogue = Catalogue.load()
        self.faults = FaultBook()
        self.instances: dict[int, Instance] = {}
        self.account = Account(account_created)
        self.busy: set[int] = set()  # machine ids whose GPUs someone else holds (bids.py)
        self.next_instance_id = FIRST_INSTANCE_ID
        self.api_key = api_key or secrets.token_hex(32)
        self.unexpected: list[dict[str, Any]] = []
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG)
        self.url = ""
        self.hosts: dict[int, SshHost] = {}
        self.logs = LogStore()
        self._host_locks: dict[int, threading.Lock] = {}
        self._boot_events: dict[int, threading.Event] = {}
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.state_file.exists():
            self._load(api_key, account_created)
        if faults is not None:
            self.faults.add(faults)
        self.save()

    # --- persistence ---------------------------------------------------------------------------

    def _load(self, api_key: str | None, account_created: datetime.date | None) -> None:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
            if state.get("version") != STATE_VERSION:
                raise StateError(self.state_file, f"version {state.get('version')!r}, "
                                                  f"this vastsim reads {STATE_VERSION}")
            self.api_key = api_key or state["api_key"]
            self.next_instance_id = state["next_instance_id"]
            self.account.restore(state, account_created)
            self.busy = set(state.get("busy_machines", []))
            self.unexpected = state.get("unexpected", [])
            self.instances = {i["id"]: Instance.from_state(i) for i in state["instances"]}
            self.catalogue.restore(state["catalogue"])
            self.faults.restore(state["faults"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateError(self.state_file, f"unreadable ({type(exc).__name__}: {exc})") from exc

    def save(self) -> None:
        """Write the state file atomically (callers hold the lock or are single-threaded)."""
        with self.lock:
            state = {
                "version": STATE_VERSION, "api_key": self.api_key,
                "next_instance_id": self.next_instance_id, **self.account.to_state(),
                "unexpected": self.unexpected, "busy_machines": sorted(self.busy),
                "instances": [i.to_state() for i in self.instances.values()],
                "catalogue": self.catalogue.to_state(), "faults": self.faults.to_state(),
            }
            tmp = self.state_file.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
                os.replace(tmp, self.state_file)
            except OSError as exc:
                raise StateError(self.state_file, f"cannot write: {exc}") from exc

    # --- start and shutdown --------------------------------------------------------------------

    def start(self, url: str) -> None:
        """Serve at ``url``: re-boot the sshd of instances that were running, start the ticker."""
        self.url = url
        now = time.time()
        for inst in self.instances.values():
            if inst.gone or not inst.sshd:
                continue
            if not _port_free(inst.port):
                inst.port = SshHost.free_port()
            host = self.hosts[inst.id] = self._make_host(inst)
            host.kill()  # leftovers of a vastsim that died without shutting down
        for inst in list(self.instances.values()):
            if inst.gone:
                continue
            if inst.phase == "running":
                self._boot_now(inst)
            elif inst.phase in TRANSIENT:
                inst.boot_state = "none"
            self._bill(inst, now)
        self.save()
        self._ticker = threading.Thread(target=self._tick, name="vastsim-ticker", daemon=True)
        self._ticker.start()

    def _boot_now(self, inst: Instance) -> None:
        """Restart-time boot of a running instance (no faults; same host key and files)."""
        try:
            if inst.sshd:
                self.hosts[inst.id].boot(inst.onstart, 0.0)
            inst.boot_state, inst.boot_done_at = "up", time.time()
        except Exception as exc:  # any boot error: the instance exits, saying why
            log.error("instance %s: sshd did not come back: %s", inst.id, exc)
            self._set_phase(inst, "exited", time.time(), boot_failure(exc))

    def shutdown(self) -> None:
        """Stop every sshd cleanly, close the billing intervals, save."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        now = time.time()
        with self.lock:
            for inst in self.instances.values():
                inst.boot_gen += 1  # any boot still in flight gives up
                inst.meter.set(now, gpu=False, storage=False)
            ids = list(self.hosts)
        for instance_id in ids:
            with self._host_lock(instance_id):
                try:
                    self.hosts[instance_id].stop()
                except SshHostError as exc:
                    log.error("instance %s: %s", instance_id, exc)
        self.save()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            with self.lock:
                self.advance()

    # --- timeline ------------------------------------------------------------------------------

    def advance(self, now: float | None = None) -> None:
        """Move every instance along its timeline up to ``now``."""
        now = time.time() if now is None else now
        with self.lock:
            changed = False
            for inst in self.instances.values():
                if inst.phase in TRANSIENT:
                    changed |= self._advance(inst, now)
            if changed:
                self.save()

    def _advance(self, inst: Instance, now: float) -> bool:
        if inst.waiting:
            return False  # outbid or no GPUs free: it stays where it is (vastsim/bids.py)
        before = (inst.phase, inst.boot_state)
        ready_at = inst.cycle_start + self.boot_seconds
        if inst.phase == "scheduling":
            loading_at = inst.cycle_start + self.boot_seconds * SCHEDULING_SHARE
            if now >= loading_at:
                self._set_phase(inst, "loading", loading_at, LOADING_MSG)
        if inst.phase in ("loading", "rebooting") and not inst.stuck:
            if inst.exit_msg is not None:
                if now >= ready_at:
                    msg, inst.exit_msg = inst.exit_msg, None
                    self._set_phase(inst, "exited", ready_at, msg)
            elif inst.boot_state == "none":
                self._start_boot(inst)
            elif inst.boot_state == "up" and now >= ready_at:
                at = max(ready_at, inst.boot_done_at or ready_at)
                self._set_phase(inst, "running", at, f"success, running {inst.image}/ssh\n")
            elif inst.boot_state == "failed":
                self._set_phase(inst, "exited", now, inst.status_msg)
        return (inst.phase, inst.boot_state) != before

    def _set_phase(self, inst: Instance, phase: str, at: float, msg: str) -> None:
        inst.phase, inst.status_msg = phase, msg
        inst.running_since = at if phase == "running" else None
        self._bill(inst, at)
        log.info("instance %s: %s", inst.id, phase)

    def _bill(self, inst: Instance, at: float) -> None:
        gpu, storage = inst.billing()
        inst.meter.set(at, gpu=gpu, storage=storage)

    def _start_boot(self, inst: Instance) -> None:
        if not inst.sshd:  # a seeded foreign instance: nothing to start
            inst.boot_state, inst.boot_done_at = "up", time.time()
            return
        inst.boot_state = "booting"
        event = self._boot_events.setdefault(inst.id, threading.Event())
        event.clear()
        threading.Thread(target=self._boot, args=(inst.id, inst.boot_gen),
                         name=f"vastsim-boot-{inst.id}", daemon=True).start()

    def _boot(self, instance_id: int, gen: int) -> None:
        """Boot thread: sshd + onstart, unless the instance moved on meanwhile."""
        try:
            with self._host_lock(instance_id):
                with self.lock:
                    inst = self.instances[instance_id]
                    if inst.boot_gen != gen or self._stop.is_set():
                        return
                    host, onstart, delay = self.hosts[instance_id], inst.onstart, inst.sshd_delay
                    inst.sshd_delay = 0.0  # SSH refuses after the first boot only
                error = None
                try:
                    host.boot(onstart, delay)
                except Exception as exc:  # else it would sit in loading forever
                    error = exc
                    log.error("instance %s: boot failed: %s", instance_id, exc)
                with self.lock:
                    if inst.boot_gen != gen:
                        return  # stopped or destroyed meanwhile; that caller stops the host
                    inst.boot_done_at = time.time()
                    if error is None:
                        inst.boot_state = "up"
                    else:
                        inst.boot_state, inst.status_msg = "failed", boot_failure(error)
                    self._advance(inst, time.time())
                    self.save()
        finally:
            self._boot_events.setdefault(instance_id, threading.Event()).set()

    def _wait_boot(self, instance_id: int) -> None:
        """With zero boot time, answer only once the boot is over (deterministic tests)."""
        event = self._boot_events.get(instance_id)
        if self.boot_seconds == 0 and event is not None:
            event.wait(BOOT_WAIT_S)
            self.advance()

    def _host_lock(self, instance_id: int) -> threading.Lock:
        with self.lock:
            return self._host_locks.setdefault(instance_id, threading.Lock())

    def _make_host(self, inst: Instance) -> SshHost:
        host = SshHost(inst.id, self.state_dir / "instances" / str(inst.id),
                       inst.session_env(self.url), inst.port)
        host.set_authorized_keys(inst.keys)
        return host

    # --- offers and rent -----------------------------------------------------------------------

    def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            return self.catalogue.search(query)

    def rent(self, offer_id: int, body: Any) -> dict[str, Any]:
        """``PUT /asks/{id}/``: validate like vast.ai, take the offer, boot the instance."""
        spec = rent_spec(offer_id, body)
        now = time.time()
        with self.lock:
            offer = self.catalogue.offer(offer_id)
            if offer is not None and self.catalogue.available(offer_id):
                if self.faults.take_offer(offer_id):
                    self.catalogue.vanish(offer_id)
                    self.save()
                    raise self.catalogue.gone(offer_id)
                if spec["disk"] > float(offer["disk_space"]):
                    raise ApiError.vast(400, "invalid_args",
                                        f"Requested disk {spec['disk']:g} GB exceeds the "
                                        f"{offer['disk_space']:g} GB offer {offer_id} has.")
                if offer.get("machine_id") in self.busy and bids.cancel_unavail(body):
                    raise bids.busy_refusal(offer_id, offer.get("machine_id"))
            instance_id = self.next_instance_id
            offer = self.catalogue.rent(offer_id, instance_id)
            self.next_instance_id += 1
            inst = Instance(
                id=instance_id, offer_id=offer_id, offer=offer, created_at=now,
                api_key=secrets.token_hex(32), jupyter_token=secrets.token_hex(32),
                port=SshHost.free_port(), cycle_start=now,
                keys=[k["public_key"] for k in self.account.live_keys()],
                meter=Meter(0.0, 0.0), **spec)
            inst.meter = Meter(inst.gpu_rate_h, inst.storage_rate_h)
            hold = bids.hold_at_rent(inst, machine_busy=offer.get("machine_id") in self.busy)
            if hold is not None:
                inst.phase, inst.status_msg = hold
            inst.stuck = self.faults.take("stuck_loading") is not None
            exited = self.faults.take("exited")
            inst.exit_msg = exited.status_msg if exited else None
            refuse = self.faults.take("ssh_refuse")
            inst.sshd_delay = refuse.seconds if refuse else 0.0
            try:
                host = self._make_host(inst)
            except (SshHostError, OSError) as exc:
                self.catalogue.rented.pop(offer_id, None)
                raise ApiError.vast(500, "server_error",
                                    f"could not set up instance {instance_id}: {exc}") from exc
            self.instances[instance_id] = inst
            self.hosts[instance_id] = host
            self._bill(inst, now)
            self._advance(inst, now)
            self.save()
        self._wait_boot(instance_id)
        return {"success": True, "new_contract": instance_id, "instance_api_key": inst.api_key}

    # --- instances -----------------------------------------------------------------------------

    def _live(self, instance_id: int) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is None or inst.gone:
            raise _no_such_instance(instance_id)
        return inst

    def show(self, instance_id: int) -> dict[str, Any] | None:
        now = time.time()
        with self.lock:
            self.advance(now)
            inst = self.instances.get(instance_id)
            return None if inst is None or inst.gone else inst.record(now)

    def list_instances(self) -> list[dict[str, Any]]:
        now = time.time()
        with self.lock:
            self.advance(now)
            return [i.record(now) for i in self.instances.values() if not i.gone]

    def label(self, instance_id: int, label: Any) -> None:
        if label is not None and not isinstance(label, str):
            raise ApiError.vast(400, "invalid_args", f"label must be a string, got {label!r}")
        if label is not None and len(label) > MAX_LABEL:
            raise ApiError.vast(400, "label_too_long", "Please limit label length to 1024 "
                                "characters, ideally less than 128.")
        with self.lock:
            self._live(instance_id).label = label
            self.save()

    def set_state(self, instance_id: int, state: Any) -> None:
        """``{"state": "running"|"stopped"}``: start or stop."""
        if state not in ("running", "stopped"):
            raise ApiError.vast(400, "invalid_args",
                                f"state must be 'running' or 'stopped', got {state!r}")
        now = time.time()
        with self.lock:
            inst = self._live(instance_id)
            self.advance(now)
            inst.intended = state
            if state == "running" and inst.waiting:  # queued: it starts when it may
                inst.status_msg = bids.waiting_msg(inst)
                self.save()
                return
            if state == "stopped":
                if inst.phase == "offline":
                    self.save()
                    return
                inst.boot_gen += 1
                inst.boot_state = "none"
                self._set_phase(inst, "stopped", now, "")
            elif inst.phase in ("stopped", "exited"):
                self._queue_start(inst, now)
            self.save()
        if state == "stopped":
            self._host_op(instance_id, "stop")
        self._wait_boot(instance_id)

    def reboot(self, instance_id: int) -> None:
        """docker stop + start in place: sshd and onstart start again."""
        now = time.time()
        with self.lock:
            inst = self.instances.get(instance_id)
            if inst is None or inst.gone:
                raise ApiError.vast(400, "invalid_args", "invalid instance_id")
            if inst.phase == "offline":
                return
            inst.boot_gen += 1
            # "hold": no boot may start (ticker included) until the old sshd is stopped
            inst.boot_state, inst.cycle_start, inst.intended = "hold", now, "running"
            self._set_phase(inst, "rebooting", now, "rebooting\n")
            self.save()
        self._host_op(instance_id, "stop")
        with self.lock:
            if inst.boot_state == "hold":
                inst.boot_state = "none"
                self._advance(inst, time.time())
            self.save()
        self._wait_boot(instance_id)

    def change_bid(self, instance_id: int, price: Any) -> None:
        """``PUT /instances/bid_price/{id}/``: a new bid; at or over min_bid an outbid one resumes.

        A running one whose new bid is under min_bid is outbid at once (vastsim/bids.py).
        """
        price = bids.check_bid(price)
        now = time.time()
        with self.lock:
            self.advance(now)
            inst = self.instances.get(instance_id)
            if inst is None or inst.gone:
                raise ApiError.vast(404, "no_such_instance",
                                    "Instance with that ID does not exist.")
            if inst.price is None:
                raise ApiError.vast(400, "invalid_args", f"Instance {instance_id} is not an "
                                    "interruptible (bid) instance.")
            inst.price = price
            inst.meter.reprice(now, price)
            high_enough = price >= bids.min_bid(inst.offer)
            if inst.waiting == bids.OUTBID and high_enough:
                inst.waiting = None
                if inst.intended == "running":
                    self._queue_start(inst, now)
            self.save()
        if not high_enough and bids.can_outbid(inst):
            self.outbid({"id": instance_id})
        self._wait_boot(instance_id)

    def _queue_start(self, inst: Instance, now: float) -> None:
        """Start (again) from scheduling: a start, a freed machine, a bid high enough."""
        inst.boot_gen += 1
        inst.boot_state, inst.cycle_start = "none", now
        self._set_phase(inst, "scheduling", now, SCHEDULING_MSG)
        self._advance(inst, now)

    def destroy(self, instance_id: int) -> None:
        """Stop sshd and every instance process, remove its files, stop billing."""
        now = time.time()
        with self.lock:
            inst = self._live(instance_id)
            inst.boot_gen += 1
            inst.intended = "stopped"
            self._set_phase(inst, "destroyed", now, "")
            inst.destroyed_at = now
            self.catalogue.release(inst.offer_id)
            self.save()
        self._host_op(instance_id, "destroy")
        with self.lock:
            self.hosts.pop(instance_id, None)

    def request_logs(self, instance_id: int, tail: int) -> str:
        """Where the instance's onstart/container output will appear (vastsim/logs.py)."""
        with self.lock:
            self._live(instance_id)
            host = self.hosts.get(instance_id)  # none for a seeded instance: an empty log
            log_file = (host.onstart_log if host else
                        self.state_dir / "instances" / str(instance_id) / "onstart.log")
        return self.logs.request(log_file, tail)

    def attach_key(self, instance_id: int, key: Any) -> None:
        if not isinstance(key, str) or not key.strip():
            raise ApiError.vast(400, "no_ssh_key", "No ssh key provided")
        with self.lock:
            inst = self._live(instance_id)
            if key.strip() not in inst.keys:
                inst.keys.append(key.strip())
            host = self.hosts.get(instance_id)
            self.save()
        if host is not None:
            with self._host_lock(instance_id):
                host.set_authorized_keys(inst.keys)

    def _host_op(self, instance_id: int, op: str) -> None:
        with self._host_lock(instance_id):
            host = self.hosts.get(instance_id)
            if host is None:
                return
            try:
                getattr(host, op)()
            except SshHostError as exc:
                log.error("instance %s: %s failed: %s", instance_id, op, exc)

    # --- account -------------------------------------------------------------------------------

    def key_owner(self, key: str) -> int | None:
        """None for the account key, the instance id for a live instance's key; else raises."""
        if secrets.compare_digest(key, self.api_key):
            return None
        with self.lock:
            for inst in self.instances.values():
                if not inst.gone and secrets.compare_digest(key, inst.api_key):
                    return inst.id
        raise ApiError.vast(401, "auth_error", "Invalid user key")

    def add_ssh_key(self, key: Any) -> dict[str, Any]:
        with self.lock:
            row = self.account.add_key(key)
            self.save()
            return row

    def update_ssh_key(self, key_id: int, key: Any) -> dict[str, Any]:
        with self.lock:
            row = self.account.update_key(key_id, key)
            self.save()
            return row

    def delete_ssh_key(self, key_id: int) -> None:
        with self.lock:
            self.account.delete_key(key_id)
            self.save()

    def user(self) -> dict[str, Any]:
        with self.lock:
            spent = sum(r["dollars"] for r in self.ledger()["instances"])
            live = [k["public_key"] for k in self.account.live_keys()]
            return {"id": USER_ID, "username": "vastsim", "email": "vastsim@localhost",
                    "fullname": "vastsim", "email_verified": True, "has_billing": True,
                    "can_pay": True, "billing_creditonly": 0, "balance": 0,
                    "balance_threshold": 3.0, "balance_threshold_enabled": False,
                    "credit": INITIAL_CREDIT - spent,
                    "ssh_key": (live[-1] + "\n") if live else None, "api_key": self.api_key}

def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def boot_failure(exc: BaseException) -> str:
    """The status_msg of an instance whose sshd failed: what failed and sshd's last words."""
    text = str(exc) if isinstance(exc, SshHostError) else f"{type(exc).__name__}: {exc}"
    first, _, rest = text.partition("\n")
    _, _, tail = rest.partition(" lines):\n")  # SshHostError: skip the command line
    return f"sshd failed: {first}\n{tail}".rstrip("\n") + "\n"
