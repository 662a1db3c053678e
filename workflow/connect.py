"""From a stack's outputs to an SSH session: which key, where the host key is pinned, and
whether the instance is still there at all.

An instance the watchdog (or vast.ai) destroyed still sits in the stack's outputs; SSH would
spend a minute on retries to end in "connection refused". So before connecting, and again when
connecting failed, we ask the API (a second): a gone or stopped instance is an InstanceGone
that says what to run. No API key, or an API that does not answer, leaves it to SSH.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from providers.credentials import STACK_API_URL
from providers.errors import VastError
from providers.records import describe_state
from remote.errors import ConnectError
from remote.keys import find_key_pair
from remote.ssh import Connection, Target
from workflow.errors import InstanceGone, OptionError
from workflow.outputs import InstanceInfo, StackOutputs
from workflow.paths import KNOWN_HOSTS_DIR
from workflow.pulumi import Stack
from workflow.settings import raw_config
from workflow.vast import client_at, client_for

NOT_RUNNING = frozenset({"exited", "offline", "unknown", "stopped"})
"""actual_status values of an instance SSH cannot reach (vast-api.md: instance states)."""


def target_for(
    outputs: StackOutputs, instance: InstanceInfo, *, ssh_key: str | None = None,
    ssh_dir: Path | None = None,
) -> Target:
    """`ssh_key` (a private key path) wins; else the pair of the stack's sshPublicKey, else
    the first of ~/.ssh/id_ed25519, id_rsa, id_ecdsa, id_dsa."""
    if ssh_key:
        key_path = readable_key(ssh_key)
    else:
        pair = find_key_pair(outputs.ssh_public_key, ssh_dir or Path.home() / ".ssh")
        key_path = pair.private_path
    known = KNOWN_HOSTS_DIR / outputs.stack / str(instance.instance_id)
    return Target(instance.ssh_host, instance.ssh_port, key_path, known, instance.ssh_user)


def readable_key(ssh_key: str) -> Path:
    """--ssh-key as a path, refused at once when it cannot be read (not after the SSH
    retries of a connect, which would take a minute to say the same)."""
    private = Path(ssh_key).expanduser()
    try:
        private.read_bytes()
    except OSError as exc:
        raise OptionError("--ssh-key", str(private),
                          f"cannot read the private key ({exc.strerror or exc})") from None
    return private


def check_alive(stack: Stack, instance_id: int) -> None:
    """InstanceGone if vast.ai says the instance is gone or not running; else nothing."""
    try:
        client = client_for(stack)
    except VastError:  # no key: nothing to ask
        return
    try:
        record = client.show_instance(instance_id)
    except VastError:  # the API does not answer: SSH will tell
        return
    finally:
        client.close()
    state = _unreachable_state(record)
    if state is False:
        return
    if state is None:
        advice = f"`inv up --stack {stack.name}` refreshes the stack and rents a new one"
    else:
        advice = (f"SSH cannot reach it; `inv down --stack {stack.name} --instance "
                  f"{instance_id}` destroys it, then `inv up --stack {stack.name}` rents anew")
    raise InstanceGone(stack.name, instance_id, state, advice)


def lost_probe(stack: Stack, instance_id: int) -> Callable[[], str | None]:
    """For a batch's stream (remote/detached.py): why vast.ai says the instance will not come
    back ("gone", "outbid (stopped): ..."), or None while it may (or the API cannot say).
    The stack's API URL is read once, here: a probe costs one API call, no pulumi run."""
    url = raw_config(stack).get(STACK_API_URL)

    def probe() -> str | None:
        try:
            client = client_at(url if isinstance(url, str) else None)
        except VastError:
            return None
        try:
            state = _unreachable_state(client.show_instance(instance_id))
        except VastError:
            return None
        finally:
            client.close()
        return None if state is False else (state or "gone")
    return probe


def _unreachable_state(record: dict[str, Any] | None) -> str | bool | None:
    """None: gone; a state: not running; False: reachable as far as the API knows."""
    if record is None or record.get("intended_status") == "destroyed":
        return None
    actual = record.get("actual_status")
    if actual in NOT_RUNNING or record.get("cur_state") == "stopped":
        return describe_state(record)
    return False


@contextmanager
def connect(stack: Stack, outputs: StackOutputs, instance: InstanceInfo, *,
            ssh_key: str | None = None) -> Iterator[Connection]:
    """An open Connection to the instance, asking the API first (and again when SSH fails)."""
    target = target_for(outputs, instance, ssh_key=ssh_key)
    check_alive(stack, instance.instance_id)
    conn = Connection(target)
    try:
        conn.open()
    except ConnectError:
        check_alive(stack, instance.instance_id)
        raise
    try:
        yield conn
    finally:
        conn.close()
