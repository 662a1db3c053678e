"""The admin side of the model: what ``/_sim/`` routes do to the cloud, and what they show.

A mixin of ``Cloud`` (vastsim/cloud.py), kept apart because none of it is vast.ai's API: seeding
foreign instances, a higher bid, a busy machine, a machine dying, the ledger and the internals
the API hides. Same locking rules as the cloud: model lock for the model, host work outside it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from vastsim import bids, seed
from vastsim.errors import ApiError
from vastsim.instance import Instance

if TYPE_CHECKING:
    from vastsim.catalogue import Catalogue
    from vastsim.sshhost import SshHost


class Admin:
    """Cloud methods behind the admin routes (they use the Cloud's state and helpers)."""

    lock: threading.RLock
    instances: dict[int, Instance]
    catalogue: Catalogue
    hosts: dict[int, SshHost]
    busy: set[int]
    next_instance_id: int

    def seed(self, spec: Any) -> list[int]:
        """Admin: foreign instances on free offers, ids in order (vastsim/seed.py)."""
        count, status, label = seed.parse(spec)
        now = time.time()
        with self.lock:
            offers = sorted(self.catalogue.free_offers(), key=lambda o: o["id"], reverse=True)
            if len(offers) < count:
                raise ApiError(400, {"error": f"only {len(offers)} free offers to seed on"})
            made: list[int] = []
            for n, offer in enumerate(offers):
                if len(made) == count:
                    break
                if not self.catalogue.available(offer["id"]):
                    continue  # shares GPUs with one seeded just now
                instance_id = self.next_instance_id
                self.next_instance_id += 1
                taken = self.catalogue.rent(offer["id"], instance_id)
                inst = seed.foreign(instance_id, offer["id"], taken, n, now, status, label)
                self.instances[instance_id] = inst
                self._bill(inst, now)
                made.append(instance_id)
            self.save()
            return made

    def outbid(self, spec: Any) -> list[int]:
        """Admin: a higher bid takes the machine of one (``{"id": N}``) or every bid instance."""
        spec = spec if isinstance(spec, dict) else {}
        now = time.time()
        with self.lock:
            self.advance(now)
            if spec.get("id") is not None:
                inst = self._live(int(spec["id"]))
                if not bids.can_outbid(inst):
                    raise ApiError(400, {"error": f"instance {inst.id} is not a bid instance "
                                                  f"meant to run (is_bid {inst.price is not None}"
                                                  f", {inst.phase}, waiting {inst.waiting})"})
                targets = [inst]
            else:
                targets = [i for i in self.instances.values() if bids.can_outbid(i)]
            for inst in targets:
                inst.boot_gen += 1
                inst.boot_state, inst.waiting = "none", bids.OUTBID
                self._set_phase(inst, "stopped", now, bids.outbid_msg(inst.price or 0.0))
            self.save()
        for inst in targets:
            self._host_op(inst.id, "stop")
        return [i.id for i in targets]

    def set_busy(self, spec: Any) -> dict[str, Any]:
        """Admin: mark a machine's GPUs taken by someone else, or free again (bids.py)."""
        spec = spec if isinstance(spec, dict) else {}
        busy = spec.get("busy", True)
        with self.lock:
            machine = spec.get("machine_id")
            if machine is None and spec.get("offer_id") is not None:
                offer = self.catalogue.offer(int(spec["offer_id"]))
                machine = offer.get("machine_id") if offer else None
            if not isinstance(machine, int) or not isinstance(busy, bool):
                raise ApiError(400, {"error": "want {\"machine_id\": M} or {\"offer_id\": O}"
                                              ", and \"busy\": true|false"})
            started = []
            if busy:
                self.busy.add(machine)
            else:
                self.busy.discard(machine)
                now = time.time()
                for inst in self.instances.values():
                    if inst.waiting == bids.UNAVAILABLE and not inst.gone and \
                            inst.offer.get("machine_id") == machine:
                        inst.waiting = None
                        if inst.intended == "running":  # the queued start happens now
                            self._queue_start(inst, now)
                            started.append(inst.id)
            self.save()
        for instance_id in started:
            self._wait_boot(instance_id)
        return {"busy_machines": sorted(self.busy), "started": started}

    def kill(self, instance_id: int, status: str, status_msg: str | None) -> None:
        """The machine dies (admin): SIGKILL everything; ``offline`` or ``exited``."""
        if status not in ("offline", "exited"):
            raise ApiError(400, {"error": f"status must be 'offline' or 'exited', got {status!r}"})
        now = time.time()
        with self.lock:
            inst = self._live(instance_id)
            inst.boot_gen += 1
            inst.boot_state = "none"
            default = "" if status == "offline" else "container exited with code 137\n"
            self._set_phase(inst, status, now, default if status_msg is None else status_msg)
            self.save()
        self._host_op(instance_id, "kill")

    def ledger(self) -> dict[str, Any]:
        now = time.time()
        with self.lock:
            self.advance(now)
            rows = []
            for inst in self.instances.values():
                row = {"id": inst.id, "offer_id": inst.offer_id, "phase": inst.phase,
                       "disk": inst.disk, "dph_base": inst.gpu_rate_h,
                       "storage_cost": inst.offer["storage_cost"],
                       **inst.meter.report(now)}
                rows.append(row)
            return {"now": now, "instances": rows,
                    "billing_now": [i.id for i in self.instances.values() if i.meter.accruing],
                    "total_dollars": sum(r["dollars"] for r in rows)}

    def internals(self) -> list[dict[str, Any]]:
        """Per instance: what the API hides (process, files, fault flags)."""
        with self.lock:
            out = []
            for inst in self.instances.values():
                host = self.hosts.get(inst.id)
                out.append({"id": inst.id, "phase": inst.phase, "boot_state": inst.boot_state,
                            "port": inst.port, "root": str(host.root) if host else None,
                            "pid": host.pid if host else None,
                            "alive": host.alive() if host else False,
                            "host_key": host.host_key_pub if host else None,
                            "stuck": inst.stuck, "offer_id": inst.offer_id,
                            "destroyed_at": inst.destroyed_at})
            return out
