"""VastInstance: the Pulumi dynamic resource, a thin adapter from Pulumi's CRUD to lifecycle.py.

Why it is shaped this way (docs/pulumi.md):
- The provider object is pickled into state by reference (this module and class name), so it
  holds no data of its own; the API key is read at run time from the environment or the key
  files (providers/credentials.py), never from Pulumi config, which the engine records in state.
- `diff` compares our own inputs only, so a change of the provider's code alone changes nothing.
- `create` never raises while an instance it rented still bills (lifecycle.py guarantees it).
- Progress lines go to stderr, which the engine forwards to the `pulumi up` output.
- An error we raise on purpose (providers.errors) reaches the user as its message: the
  dynamic provider host would otherwise send the whole Python traceback (see
  `_messages_not_tracebacks`).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from types import ModuleType
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

from providers.api import VastClient, stderr_notify
from providers.cost import rates
from providers.credentials import STACK_API_URL, load_api_key, load_api_url, load_registry_login
from providers.errors import ConfigError, InstanceGoneError, VastError
from providers.labels import full_label, resource_tag
from providers.lifecycle import Created, InstanceSpec, Lifecycle
from providers.records import describe_state, is_outbid, ssh_endpoint
from providers.settings import INSTANCE_KEYS, REPLACE_KEYS, Settings, parse_settings, problems
from remote.errors import RemoteError
from remote.keys import find_key_pair
from remote.ssh import DEFAULT_USER, login_probe

OUTPUT_KEYS = (
    "instance_id", "offer_id", "machine_id", "ssh_host", "ssh_port", "ssh_user", "public_ip",
    "gpu_name", "num_gpus", "gpu_ram_gb", "dph_total", "cuda_max_good", "geolocation", "status",
    "label", "started_at", "ssh_command", "pricing", "estimate", "create_timings",
)
INPUT_KEYS = frozenset(k.name for k in INSTANCE_KEYS) | {"tag"}
"""The inputs diff compares: ours only, so a change of the provider's code alone is none."""


def _progress(line: str) -> None:
    stderr_notify(line)


class VastInstanceProvider(ResourceProvider):
    """CRUD for one vast.ai instance."""

    serialize_as_secret_always = False

    def __init__(self) -> None:
        self._stack_url: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # the URL is a run-time fact; nothing of it goes into state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._stack_url = None

    def configure(self, req: ConfigureRequest) -> None:
        self._stack_url = req.config.get(STACK_API_URL)

    def _client(self) -> VastClient:
        return VastClient(load_api_url(self._stack_url), load_api_key(), notify=_progress)

    def _lifecycle(self, client: VastClient, key_path: str | None) -> Lifecycle:
        def probe(host: str, port: int) -> str | None:
            if not key_path:
                return "no private key to log in with"
            return login_probe(host, port, Path(key_path))

        return Lifecycle(client, progress=_progress, ssh_probe=probe)

    # -- CRUD -----------------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(_bare(e.key), str(e)) for e in problems(_ours(news))]
        try:  # no API call here: only whether a key and a URL can be found at all
            load_api_key()
            load_api_url(self._stack_url)
        except ConfigError as exc:
            failures.append(CheckFailure(_bare(exc.key), str(exc)))
        if not failures and news.get("sshPublicKey") != UNKNOWN:
            try:
                pair = find_key_pair(news.get("sshPublicKey"), Path.home() / ".ssh")
            except RemoteError as exc:
                failures.append(CheckFailure("sshPublicKey", str(exc)))
            else:
                resolved = {"sshPublicKey": pair.public_key, "sshKeyPath": str(pair.private_path)}
                news = {**news, **resolved}
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        settings = _settings(props)
        spec = InstanceSpec(settings, tag=props["tag"], ssh_public_key=props["sshPublicKey"],
                            image_login=load_registry_login(settings.image))
        client = self._client()
        try:
            created = self._lifecycle(client, props.get("sshKeyPath")).create(spec)
        finally:
            client.close()
        _progress(f"create done in {client.calls} API call(s)")
        return CreateResult(id_=str(created.record["id"]), outs=_outs(props, created.record,
                                                                      created=created))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        client = self._client()
        try:
            record = client.show_instance(int(id_))
        finally:
            client.close()
        if record is None or record.get("intended_status") == "destroyed":
            _progress(f"instance {id_} is gone")
            return ReadResult(id_="", outs={})
        if record.get("actual_status") != "running":
            hint = " (`pulumi destroy` or `inv down` ends it)" if is_outbid(record) else ""
            _progress(f"instance {id_}: {describe_state(record)}{hint}")
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
            raise InstanceGoneError(instance_id, "run `pulumi up --refresh` to rent a new one")
        return UpdateResult(outs=_outs(news, record, kept=olds))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        client = self._client()
        try:
            gone = self._lifecycle(client, None).delete(int(id_), props["tag"])
        finally:
            client.close()
        ids = ", ".join(map(str, gone))
        _progress(f"deleted instance(s) {ids}; nothing of this resource bills any more")


def _bare(key: str) -> str:
    return key.split(":", 1)[-1]


def _ours(props: dict[str, Any]) -> dict[str, Any]:
    """The settings among the inputs (they also hold the tag, the key path and old outputs)."""
    return {k: v for k, v in props.items() if k in INPUT_KEYS and k != "tag"}


def _settings(props: dict[str, Any]) -> Settings:
    return parse_settings(_ours(props))


def _outs(
    inputs: dict[str, Any], record: dict[str, Any], *, created: Created | None = None,
    kept: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Inputs (diff compares against them) plus the outputs of design.md; the create's timings,
    estimate and offer are kept from earlier outputs (``kept``, else the inputs, which hold the
    old outputs on refresh) when this is not a create."""
    earlier = kept if kept is not None else inputs
    endpoint = ssh_endpoint(record)
    host = endpoint.host if endpoint else None
    port = endpoint.port if endpoint else None
    gpu_ram = record.get("gpu_ram")
    if created is not None:
        offer_id: Any = created.candidate.offer_id
        est: Any = created.candidate.estimate.to_json()
        timings: Any = {k: round(v, 3) for k, v in created.timings.items()}
    else:
        offer_id, est = earlier.get("offer_id"), earlier.get("estimate")
        timings = earlier.get("create_timings")
    return {
        **{k: v for k, v in inputs.items() if not k.startswith("__")},
        "instance_id": int(record["id"]),
        "offer_id": offer_id,
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
        "status": "outbid (stopped)" if is_outbid(record) else record.get("actual_status"),
        "label": inputs.get("label"),
        "started_at": record.get("start_date"),
        "ssh_command": f"ssh -p {port} {DEFAULT_USER}@{host}" if endpoint else None,
        "pricing": rates(record, bid_price=inputs.get("bidPrice")).to_json(),
        "estimate": est,
        "create_timings": timings,
    }


class VastInstance(Resource, module="vast", name="Instance"):
    """One rented vast.ai instance that answers on SSH."""

    instance_id: pulumi.Output[int]
    ssh_host: pulumi.Output[str]
    ssh_port: pulumi.Output[int]
    ssh_command: pulumi.Output[str]

    def __init__(
        self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        inputs: dict[str, Any] = {
            **settings.instance_inputs(),
            "tag": resource_tag(pulumi.get_project(), pulumi.get_stack(), name),
            **dict.fromkeys(OUTPUT_KEYS),
        }
        inputs["label"] = settings.label
        super().__init__(VastInstanceProvider(), name, inputs, opts)


class _ExpectedErrorsAsMessages:
    """Stands in for the `traceback` module inside Pulumi's dynamic provider host, whose
    handlers send ``traceback.format_exc()`` to the engine: for our own errors (VastError)
    that becomes the message alone; anything else, a bug, keeps its full traceback."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def format_exc(*args: Any, **kwargs: Any) -> str:
        exc = sys.exc_info()[1]
        if isinstance(exc, VastError):
            return str(exc)
        return traceback.format_exc(*args, **kwargs)


def _messages_not_tracebacks(host: ModuleType | None) -> None:
    """Install the stand-in in the dynamic provider host (``python -m pulumi.dynamic``), the
    one place its error text is made; elsewhere (the program, tests) this does nothing."""
    spec = getattr(host, "__spec__", None)
    if host is not None and getattr(spec, "name", "") == "pulumi.dynamic.__main__" and hasattr(
        host, "traceback"
    ):
        host.traceback = _ExpectedErrorsAsMessages()  # type: ignore[attr-defined]


_messages_not_tracebacks(sys.modules.get("__main__"))
