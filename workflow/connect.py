"""From a stack's outputs to an SSH Target: which key, and where its host key is pinned."""

from __future__ import annotations

from pathlib import Path

from remote.keys import find_key_pair
from remote.ssh import Target
from workflow.outputs import InstanceInfo, StackOutputs
from workflow.paths import KNOWN_HOSTS_DIR


def target_for(
    outputs: StackOutputs, instance: InstanceInfo, *, ssh_key: str | None = None,
    ssh_dir: Path | None = None,
) -> Target:
    """`ssh_key` (a private key path) wins; else the pair of the stack's sshPublicKey, else
    the first of ~/.ssh/id_ed25519, id_rsa, id_ecdsa, id_dsa."""
    if ssh_key:
        key_path = Path(ssh_key).expanduser()
    else:
        pair = find_key_pair(outputs.ssh_public_key, ssh_dir or Path.home() / ".ssh")
        key_path = pair.private_path
    known = KNOWN_HOSTS_DIR / outputs.stack / str(instance.instance_id)
    return Target(instance.ssh_host, instance.ssh_port, key_path, known, instance.ssh_user)
