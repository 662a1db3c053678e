"""VastInstance: the Pulumi dynamic resource, a thin adapter from Pulumi's CRUD to lifecycle.py.

Why it is shaped this way (shared/docs/pulumi-offline.md §4):
- The provider object is pickled into state by reference (this module and class name), so it
  holds no data of its own; the API key and URL are resolved at run time through `configure`
  and the environment, and `__getstate__` keeps them out of any pickle.
- `diff` compares our own inputs only, so a change of the provider's code alone changes nothing.
- `create` never raises while an instance it rented still bills (lifecycle.py guarantees it).
- Progress lines go to stderr, which the engine forwards to the `pulumi up` output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime.rpc import UNKNOWN

from providers.api import VastClient
from providers.cost import rates
from providers.errors import ConfigError, VastError
from providers.lifecycle import Lifecycle, full_label, resource_tag, ssh_endpoint
from providers.settings import STACK_API_KEY, STACK_API_URL, load_api_key, load_api_url
from providers.stack import (
    INPUT_KEYS,
    REPLACE_KEYS,
    InstanceArgs,
    spec_from_inputs,
    validate_inputs,
)
from remote.keys import find_key_pair
from remote.ssh import DEFAULT_USER, login_probe

OUTPUT_KEYS = (
    "instance_id", "offer_id", "machine_id", "ssh_host", "ssh_port", "ssh_user", "public_ip",
    "gpu_name", "num_gpus", "gpu_ram_gb", "dph_total", "cuda_max_good", "geolocation", "status",
    "label", "started_at", "ssh_command", "pricing", "estimate", "create_timings",
)


def _progress(line: str) -> None:
    print(f"vast-gpu: {line}", file=sys.stderr, flush=True)


class VastInstanceProvider(ResourceProvider):
    """CRUD for one vast.ai instance."""

    serialize_as_secret_always = False

    def __init__(self) -> None:
        self._stack_key: str | None = None
        self._stack_url: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # the key and URL are run-time facts; nothing of them goes into state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._stack_key = None
        self._stack_url = None

    def configure(self, req: ConfigureRequest) -> None:
        self._stack_key = req.config.get(STACK_API_KEY)
        self._stack_url = req.config.get(STACK_API_URL)

    def _client(self) -> VastClient:
        return VastClient(load_api_url(self._stack_url), load_api_key(self._stack_key))

    def _lifecycle(self, client: VastClient, key_path: str | None) -> Lifecycle:
        def probe(host: str, port: int) -> str | None:
            if not key_path:
                return "no private key to log in with"
            return login_probe(host, port, Path(key_path))

        return Lifecycle(client, progress=_progress, ssh_probe=probe)

    # -- CRUD -----------------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(key, reason) for key, reason in validate_inputs(news)]
        try:  # no API call here: only whether a key and a URL can be found at all
            load_api_key(self._stack_key)
            load_api_url(self._stack_url)
        except ConfigError as exc:
            failures.append(CheckFailure(exc.key, str(exc)))
        if not failures and news.get("sshPublicKey") != UNKNOWN:
            try:
                pair = find_key_pair(news.get("sshPublicKey"), Path.home() / ".ssh")
            except Exception as exc:
                failures.append(CheckFailure("sshPublicKey", str(exc)))
            else:
                resolved = {"sshPublicKey": pair.public_key, "sshKeyPath": str(pair.private_path)}
                news = {**news, **resolved}
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        client = self._client()
        try:
            lifecycle = self._lifecycle(client, props.get("sshKeyPath"))
            record = lifecycle.create(spec_from_inputs(props))
        finally:
            client.close()
        _progress(f"create done in {client.calls} API call(s)")
        est = lifecycle.chosen_estimate
        outs = _outs(props, record, timings=lifecycle.timings,
                     estimate=est.to_json() if est else None, offer_id=lifecycle.chosen_offer_id)
        return CreateResult(id_=str(record["id"]), outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        client = self._client()
        try:
            record = client.show_instance(int(id_))
        finally:
            client.close()
        if record is None or record.get("intended_status") == "destroyed":
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=_outs(props, record))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = sorted(k for k in INPUT_KEYS if olds.get(k) != news.get(k))
        replaces = [k for k in changed if k in REPLACE_KEYS]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        instance_id = int(id_)
        client = self._client()
        try:
            new_label = full_label(news["tag"], news.get("label"))
            if new_label != full_label(olds["tag"], olds.get("label")):
                client.set_label(instance_id, new_label)
                _progress(f"instance {instance_id}: label set to {new_label!r}")
            if news.get("sshPublicKey") != olds.get("sshPublicKey"):
                client.attach_ssh_key(instance_id, news["sshPublicKey"])
                _progress(f"instance {instance_id}: SSH key attached")
            record = client.show_instance(instance_id)
        finally:
            client.close()
        if record is None:
            raise VastError(
                f"instance {instance_id} is gone; run `pulumi refresh`, then `pulumi up`"
            )
        return UpdateResult(outs=_outs(news, record, timings=olds.get("create_timings"),
                                       estimate=olds.get("estimate")))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        client = self._client()
        try:
            gone = self._lifecycle(client, None).delete(int(id_), props["tag"])
        finally:
            client.close()
        ids = ", ".join(map(str, gone))
        _progress(f"deleted instance(s) {ids}; nothing of this resource bills any more")


def _outs(
    inputs: dict[str, Any], record: dict[str, Any], *, timings: dict[str, float] | None = None,
    estimate: dict[str, Any] | None = None, offer_id: int | None = None,
) -> dict[str, Any]:
    """Inputs (diff compares against them) plus the outputs of design.md; the create's timings
    and estimate are kept from earlier outputs when this is not a create."""
    endpoint = ssh_endpoint(record)
    host = endpoint.host if endpoint else None
    port = endpoint.port if endpoint else None
    gpu_ram = record.get("gpu_ram")
    return {
        **{k: v for k, v in inputs.items() if not k.startswith("__")},
        "instance_id": int(record["id"]),
        "offer_id": offer_id if offer_id is not None else inputs.get("offer_id"),
        "machine_id": record.get("machine_id"),
        "ssh_host": host,
        "ssh_port": port,
        "ssh_user": DEFAULT_USER,
        "public_ip": (record.get("public_ipaddr") or "").strip() or None,
        "gpu_name": record.get("gpu_name"),
        "num_gpus": record.get("num_gpus"),
        "gpu_ram_gb": round(gpu_ram / 1000, 1) if isinstance(gpu_ram, int | float) else None,
        "dph_total": record.get("dph_total"),
        "cuda_max_good": record.get("cuda_max_good"),
        "geolocation": record.get("geolocation"),
        "status": record.get("actual_status"),
        "label": inputs.get("label"),
        "started_at": record.get("start_date"),
        "ssh_command": f"ssh -p {port} {DEFAULT_USER}@{host}" if endpoint else None,
        "pricing": rates(record, bid_price=inputs.get("bidPrice")).to_json(),
        "estimate": estimate if estimate is not None else inputs.get("estimate"),
        "create_timings": (
            {k: round(v, 3) for k, v in timings.items()} if timings is not None
            else inputs.get("create_timings")
        ),
    }


class VastInstance(Resource, module="vast", name="Instance"):
    """One rented vast.ai instance that answers on SSH."""

    instance_id: pulumi.Output[int]
    ssh_host: pulumi.Output[str]
    ssh_port: pulumi.Output[int]
    ssh_command: pulumi.Output[str]

    def __init__(
        self, name: str, args: InstanceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        inputs: dict[str, Any] = {
            **args.to_inputs(),
            "tag": resource_tag(pulumi.get_project(), pulumi.get_stack(), name),
            **dict.fromkeys(OUTPUT_KEYS),
        }
        inputs["label"] = args.label
        secret = ["registryLogin"] if args.registry_login else []
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=secret)
        )
        super().__init__(VastInstanceProvider(), name, inputs, opts)

