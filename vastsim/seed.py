"""Foreign instances: what else runs on the account (``POST /_sim/seed``, ``VastSim.seed``).

A real account rarely holds only our instances: a notebook someone started by hand, a
colleague's fine-tune. Tests seed such instances to prove our client pages through them and
never touches them. They carry ordinary labels (never a ``vast-gpu:`` tag; some none at all),
were started a while ago, bill like any other, and have no sshd behind them (``sshd: false``):
starting 30 real sshds would only cost time, and nothing of ours logs into them.
"""

from __future__ import annotations

import secrets
from typing import Any

from vastsim.errors import ApiError
from vastsim.instance import Instance
from vastsim.ledger import Meter

MAX_SEED = 500
LABELS = ("jupyter-notebook", "comfyui", "llama-finetune", "sd-webui", None, "vllm-serve",
          "dev-box", "kaggle")
IMAGES = ("vastai/pytorch:latest", "vastai/comfy:latest", "vllm/vllm-openai:latest")
STATUSES = frozenset({"running", "stopped", "exited"})
AGE_S = 3 * 86400.0  # started three days ago
FAKE_PORT_BASE = 41000  # the record's ssh_port; nothing listens there


def parse(spec: Any) -> tuple[int, str, str | None]:
    """``{"count": N, "status": "running", "label": optional}`` -> (count, status, label)."""
    spec = spec if isinstance(spec, dict) else {}
    count = spec.get("count", 1)
    status = spec.get("status", "running")
    label = spec.get("label")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_SEED:
        raise ApiError(400, {"error": f"count must be 1..{MAX_SEED}, got {count!r}"})
    if status not in STATUSES:
        raise ApiError(400, {"error": f"status must be one of {sorted(STATUSES)}, got {status!r}"})
    if label is not None and not isinstance(label, str):
        raise ApiError(400, {"error": f"label must be a string, got {label!r}"})
    return count, status, label


def foreign(instance_id: int, offer_id: int, offer: dict[str, Any], n: int, now: float,
            status: str, label: str | None) -> Instance:
    """The n-th seeded instance, in ``status`` since a while ago."""
    disk = 32.0
    inst = Instance(
        id=instance_id, offer_id=offer_id, offer=offer, created_at=now - AGE_S,
        image=IMAGES[n % len(IMAGES)], disk=disk, api_key=secrets.token_hex(32),
        jupyter_token=secrets.token_hex(32), port=FAKE_PORT_BASE + n % 10000, env=[],
        keys=[], meter=Meter(0.0, 0.0),
        label=label if label is not None else _label(n), runtype="jupyter_proxy ssh_proxy",
        phase=status, status_msg=_status_msg(status, n), sshd=False, boot_state="up",
        running_since=now - AGE_S if status == "running" else None)
    inst.meter = Meter(inst.gpu_rate_h, inst.storage_rate_h)
    return inst


def _label(n: int) -> str | None:
    base = LABELS[n % len(LABELS)]
    return None if base is None else f"{base}-{n}"


def _status_msg(status: str, n: int) -> str:
    if status == "running":
        return f"success, running {IMAGES[n % len(IMAGES)]}/jupyter\n"
    if status == "exited":
        return "container exited with code 1\n"
    return ""
