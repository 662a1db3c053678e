"""`inv status`: each instance of a stack as its outputs say and as vast.ai says it is now."""

from __future__ import annotations

from collections.abc import Iterator

from providers.records import describe_state
from workflow.outputs import StackOutputs
from workflow.pulumi import Stack
from workflow.vast import client_for


def status_lines(stack: Stack, outputs: StackOutputs) -> Iterator[str]:
    """One line per instance (state in plain words: "outbid (stopped)", "GONE"), then the
    remote dirs."""
    client = client_for(stack)
    try:
        for inst in outputs.instances:
            live = client.show_instance(inst.instance_id)
            state = (f"GONE: `inv up --stack {stack.name}` refreshes and rents again"
                     if live is None else describe_state(live))
            yield (f"instance {inst.instance_id}: {inst.num_gpus}x {inst.gpu_name}, "
                   f"${inst.dph_total or 0:.3f}/h, ssh -p {inst.ssh_port} "
                   f"{inst.ssh_user}@{inst.ssh_host}: {state}")
    finally:
        client.close()
    yield f"appDir {outputs.app_dir}, workDir {outputs.work_dir}"
