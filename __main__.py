"""The vast-gpu Pulumi program: stack config -> VastInstance(s) -> exports. Composition only.

No logic and no HTTP here: providers/settings.py reads and checks the config (a bad value ends
the program with its message, not a traceback), the provider (providers/instance.py) rents.
With `count` 1 the instance's fields sit at the top level of the outputs; with more, under
`instances`.
"""

import pulumi
from pulumi.runtime.config import CONFIG

from providers.errors import VastError
from providers.instance import OUTPUT_KEYS, VastInstance
from providers.settings import from_program_config, parse_settings

try:
    settings = parse_settings(from_program_config(CONFIG.get()))
except VastError as exc:
    raise pulumi.RunError(str(exc)) from None
names = ["gpu"] if settings.count == 1 else [f"gpu-{i}" for i in range(settings.count)]
instances = [VastInstance(name, settings) for name in names]

pulumi.export("appDir", settings.app_dir)
pulumi.export("workDir", settings.work_dir)
pulumi.export("sshPublicKey", settings.ssh_public_key)
exported = [{key: getattr(inst, key) for key in OUTPUT_KEYS} for inst in instances]
if settings.count == 1:
    for key, value in exported[0].items():
        pulumi.export(key, value)
else:
    pulumi.export("instances", exported)
