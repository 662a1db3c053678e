"""A stack's outputs as the tasks need them: where each instance answers and the remote dirs.

Pure: it takes the dict `pulumi stack output --json` printed. With count 1 the instance's
fields sit at the top level; with more, under `instances` (see __main__.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.settings import DEFAULT_APP_DIR, DEFAULT_WORK_DIR
from workflow.errors import OptionError, OutputsError


def instance_id_of(value: int | str | None) -> int | None:
    """An --instance value as the int the outputs hold (invoke passes it as a string)."""
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise OptionError("--instance", value,
                          "an instance id is a positive number (`inv status` lists them)")
    return number


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: int
    ssh_host: str
    ssh_port: int
    ssh_user: str
    gpu_name: str | None
    num_gpus: int | None
    dph_total: float | None
    status: str | None
    label: str | None


@dataclass(frozen=True)
class StackOutputs:
    stack: str
    instances: tuple[InstanceInfo, ...]
    app_dir: str
    work_dir: str
    ssh_public_key: str | None

    def pick(self, instance: int | str | None = None) -> InstanceInfo:
        """The instance to talk to: the one with that id, or the only one."""
        instance_id = instance_id_of(instance)
        if instance_id is not None:
            for inst in self.instances:
                if inst.instance_id == instance_id:
                    return inst
            ids = ", ".join(str(i.instance_id) for i in self.instances)
            raise OutputsError(self.stack, f"has no instance {instance_id} (it has {ids})")
        if len(self.instances) != 1:
            ids = ", ".join(str(i.instance_id) for i in self.instances)
            raise OutputsError(self.stack, f"has instances {ids}; pass --instance ID")
        return self.instances[0]


def named_ids(outputs: Mapping[str, Any]) -> set[int]:
    """The instance ids the outputs name; none (not an error) when an `up` wrote none."""
    rows = outputs.get("instances") if "instances" in outputs else [outputs]
    return {int(r["instance_id"]) for r in rows or []
            if isinstance(r, Mapping) and r.get("instance_id")}


def parse_outputs(stack: str, outputs: Mapping[str, Any]) -> StackOutputs:
    rows = outputs.get("instances") if "instances" in outputs else [outputs]
    if not rows or not all(isinstance(r, Mapping) and r.get("instance_id") for r in rows):
        raise OutputsError(stack, "no instance in the outputs: run `inv up` (or `pulumi up`)")
    instances = []
    for row in rows:
        if not row.get("ssh_host") or not row.get("ssh_port"):
            raise OutputsError(stack, f"instance {row.get('instance_id')} has no SSH endpoint")
        instances.append(InstanceInfo(
            instance_id=int(row["instance_id"]), ssh_host=str(row["ssh_host"]),
            ssh_port=int(row["ssh_port"]), ssh_user=str(row.get("ssh_user") or "root"),
            gpu_name=row.get("gpu_name"), num_gpus=row.get("num_gpus"),
            dph_total=row.get("dph_total"), status=row.get("status"), label=row.get("label"),
        ))
    return StackOutputs(
        stack=stack, instances=tuple(instances),
        app_dir=str(outputs.get("appDir") or DEFAULT_APP_DIR),
        work_dir=str(outputs.get("workDir") or DEFAULT_WORK_DIR),
        ssh_public_key=outputs.get("sshPublicKey"),
    )
