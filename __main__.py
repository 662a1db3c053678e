"""The vast-gpu Pulumi program: stack config -> VastInstance(s) -> exports. Composition only.

No logic and no HTTP here: providers/stack.py reads and checks the config, the provider
(providers/instance.py) rents. With `count` 1 the instance's fields sit at the top level of the
outputs; with more, under `instances`.
"""

import pulumi

from providers.instance import OUTPUT_KEYS, VastInstance
from providers.settings import DEFAULT_APP_DIR, DEFAULT_WORK_DIR
from providers.stack import read_stack_config

config = pulumi.Config("vast-gpu")
args, count = read_stack_config(config)
names = ["gpu"] if count == 1 else [f"gpu-{i}" for i in range(count)]
instances = [VastInstance(name, args) for name in names]

pulumi.export("appDir", config.get("appDir") or DEFAULT_APP_DIR)
pulumi.export("workDir", config.get("workDir") or DEFAULT_WORK_DIR)
pulumi.export("sshPublicKey", args.ssh_public_key)
exported = [{key: getattr(inst, key) for key in OUTPUT_KEYS} for inst in instances]
if count == 1:
    for key, value in exported[0].items():
        pulumi.export(key, value)
else:
    pulumi.export("instances", exported)
