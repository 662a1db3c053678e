"""One rented instance: its stored facts and the vast.ai JSON record built from them.

The record carries exactly the fields of a real one (``data/instance-template.json`` is the
recorded ``show instance`` answer), filled from the rented offer and the rent body; ``ports``
is added once the instance runs with a direct runtype, as on vast.ai.

Phases (``actual_status``): ``scheduling`` -> ``loading`` -> ``running``; ``stopped``,
``rebooting``, ``exited`` and ``offline`` as the API shows them; ``destroyed`` is internal
(the API then answers ``{"instances": null}``).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vastsim.catalogue import storage_hourly
from vastsim.ledger import Meter

TEMPLATE_FILE = Path(__file__).with_name("data") / "instance-template.json"
_TEMPLATE: dict[str, Any] = json.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))
LOOPBACK = "127.0.0.1"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PORT_REQUEST = re.compile(r"-p\s+(\d+):(\d+)(/(tcp|udp))?\Z")

TRANSIENT = frozenset({"scheduling", "loading", "rebooting"})
# Storage bills while the instance exists and its host is online (vast-api.md section 9).
NO_STORAGE = frozenset({"offline", "destroyed"})
LOADING_MSG = "59729b65119e: Pull complete\n"
SCHEDULING_MSG = "Attempting to schedule your instance...\n"


@dataclass
class Instance:
    """What vastsim stores about one instance (everything JSON-serialisable)."""

    id: int
    offer_id: int
    offer: dict[str, Any]
    created_at: float
    image: str
    disk: float
    api_key: str
    jupyter_token: str
    port: int
    env: list[list[str]]  # the rent's env as [key, value] pairs, port requests included
    keys: list[str]  # authorized keys: account keys at rent time plus attached ones
    meter: Meter
    label: str | None = None
    onstart: str | None = None
    runtype: str = "ssh"
    price: float | None = None  # the bid, for an interruptible instance
    template_hash_id: str | None = None
    image_args: list[Any] = field(default_factory=list)
    phase: str = "scheduling"
    intended: str = "running"
    cycle_start: float = 0.0  # when the current start (rent, start, reboot) began
    status_msg: str = SCHEDULING_MSG
    boot_state: str = "none"  # none | hold (reboot stopping the old sshd) | booting | up | failed
    boot_done_at: float | None = None
    boot_gen: int = 0  # bumped by every stop/start/kill/destroy: stale boots give up
    stuck: bool = False
    exit_msg: str | None = None
    sshd_delay: float = 0.0
    running_since: float | None = None
    destroyed_at: float | None = None
    waiting: str | None = None  # why it cannot run although meant to (vastsim/bids.py)
    sshd: bool = True  # False: a seeded foreign instance, no sshd behind it (vastsim/seed.py)

    @property
    def gone(self) -> bool:
        return self.phase == "destroyed"

    @property
    def direct(self) -> bool:
        """Direct runtypes get a ``ports`` mapping (``ssh_direc``, ``jupyter_direct``, ...)."""
        return "direc" in self.runtype

    @property
    def gpu_rate_h(self) -> float:
        return self.price if self.price is not None else float(self.offer["dph_base"])

    @property
    def storage_rate_h(self) -> float:
        return storage_hourly(self.disk, float(self.offer["storage_cost"]))

    def session_env(self, vast_url: str) -> dict[str, str]:
        """What SSH sessions and onstart see: the rent's env vars, then vast.ai's own."""
        env = {k: v for k, v in self.env if ENV_NAME.match(k) and "\n" not in v and "\0" not in v}
        env.update({
            "CONTAINER_ID": str(self.id),
            "CONTAINER_API_KEY": self.api_key,
            "VAST_CONTAINERLABEL": f"C.{self.id}",
            "PUBLIC_IPADDR": LOOPBACK,
            "GPU_COUNT": str(self.offer.get("num_gpus", 1)),
            "JUPYTER_TOKEN": self.jupyter_token,
            "VAST_TCP_PORT_22": str(self.port),
            "VAST_URL": vast_url,  # where the vast.ai CLI inside the instance finds vastsim
        })
        if self.keys:
            env["SSH_PUBLIC_KEY"] = self.keys[0]
        for host, container in self._port_requests():
            env[f"VAST_TCP_PORT_{container}"] = host
        return env

    def _port_requests(self) -> list[tuple[str, str]]:
        """``-p 8080:8080`` env keys -> [(host port, container port)]; identity on loopback."""
        out = []
        for key, _ in self.env:
            m = PORT_REQUEST.match(key.strip())
            if m and m.group(3) != "/udp":
                out.append((m.group(2), m.group(2)))
        return out

    def prices(self, running: bool) -> dict[str, float]:
        """vast.ai's price object: what the instance costs per hour in a given state."""
        gpu = self.gpu_rate_h if running else 0.0
        disk = self.storage_rate_h
        return {"discountTotalHour": 0, "discountedTotalPerHour": gpu + disk,
                "diskHour": disk, "gpuCostPerHour": gpu, "totalHour": gpu + disk}

    def record(self, now: float) -> dict[str, Any]:
        """The instance as ``GET /api/v0/instances/{id}/`` shows it."""
        offer = self.offer
        running = self.phase == "running"
        total = self.gpu_rate_h + self.storage_rate_h
        values: dict[str, Any] = {
            "actual_status": self.phase,
            "cur_state": "stopped" if self.intended == "stopped" or self.waiting else "running",
            "intended_status": self.intended,
            "next_state": self.intended,
            "status_msg": self.status_msg,
            "id": self.id,
            "label": self.label,
            "image_uuid": self.image,
            "image_args": self.image_args,
            "image_runtype": self.runtype,
            "onstart": self.onstart,
            "extra_env": [list(p) for p in self.env],
            "template_hash_id": self.template_hash_id,
            "jupyter_token": self.jupyter_token,
            "disk_space": self.disk,
            "dph_base": self.gpu_rate_h,
            "dph_total": total,
            "storage_total_cost": self.storage_rate_h,
            "is_bid": self.price is not None,
            "instance": self.prices(running),
            "search": self.prices(True),
            "start_date": self.created_at,
            "duration": (offer["end_date"] - now) if offer.get("end_date") else None,
            "uptime_mins": ((now - self.running_since) / 60
                            if running and self.running_since else None),
            "public_ipaddr": LOOPBACK,
            "local_ipaddrs": f"{LOOPBACK} \n",
            "ssh_host": LOOPBACK,
            "ssh_idx": "0",
            "ssh_port": self.port,
            "machine_dir_ssh_port": self.port,
            "direct_port_start": self.port if self.direct else -1,
            "direct_port_end": self.port if self.direct else -1,
            "gpu_totalram": offer.get("gpu_total_ram"),
            "rentable": True,
            "reliability2": offer.get("reliability2"),
        }
        for key, per in (("dlperf_per_dphtotal", "dlperf"), ("flops_per_dphtotal", "total_flops")):
            if offer.get(per) is not None and total > 0:
                values[key] = offer[per] / total
        rec: dict[str, Any] = {}
        for key, default in _TEMPLATE.items():
            if key in values:
                rec[key] = values[key]
            elif key in offer:
                rec[key] = copy.deepcopy(offer[key])
            else:
                rec[key] = copy.deepcopy(default)
        if running and self.direct:
            ports = {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(self.port)}]}
            for host, container in self._port_requests():
                ports[f"{container}/tcp"] = [{"HostIp": "0.0.0.0", "HostPort": host}]
            rec["ports"] = ports
        return rec

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Instance:
        data = dict(data)
        data["meter"] = Meter(**data["meter"])
        return cls(**data)

    def billing(self) -> tuple[bool, bool]:
        """(GPU billed, storage billed) in the current phase."""
        return self.phase == "running", self.phase not in NO_STORAGE
