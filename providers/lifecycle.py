"""Rent, wait and destroy: the money-safe life of one vast.ai instance. No Pulumi here.

The rule everything below serves: once this code has rented an instance, it either hands that
instance back ready (running, and SSH accepting the user's key) or destroys it and checks that
it is gone, before it raises. Pulumi records nothing when create raises, so an instance that
create leaked would bill with nobody tracking it. Leftovers of a create that was killed before
it could clean up (SIGKILL, power loss) carry the resource's label, and the next create or
delete finds and destroys them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.api import VastClient
from providers.cost import (
    DEFAULT_EXPECTED_HOURS,
    DEFAULT_EXPECTED_PULL_GB,
    DEFAULT_EXPECTED_SYNC_GB,
    Estimate,
    estimate,
    over_cap_message,
    within_cap,
)
from providers.errors import (
    ApiError,
    CostCapError,
    LifecycleError,
    NoOfferError,
    OfferGoneError,
    ServerError,
    TransportError,
    VastError,
)
from providers.query import build_search

POLL_FIRST_S = 1.0
POLL_MAX_S = 5.0
POLL_FACTOR = 1.5
DESTROY_VERIFY_TIMEOUT_S = 120.0
RUNTYPE = "ssh_direc ssh_proxy"  # the CLI's spelling (sic): direct port 22 plus the proxy
LABEL_TAG_PREFIX = "vast-gpu:"
MAX_COST_HINT = (
    "Raise it (`pulumi config set vast-gpu:maxCost <dollars>`, or unset it), or expect less: "
    "vast-gpu:expectedHours, expectedSyncGB, expectedPullGB, disk, or a cheaper query."
)

PENDING_STATES = frozenset({None, "", "created", "scheduling", "loading", "rebooting", "stopped"})
FAILED_STATES = frozenset({"exited", "offline", "unknown"})

Progress = Callable[[str], None]
SshProbe = Callable[[str, int], "str | None"]
"""(host, port) -> None once a login with the user's key works, else why not (one try)."""


@dataclass(frozen=True)
class InstanceSpec:
    """Everything a create needs, already validated (instance.py builds it from the inputs)."""

    image: str
    disk_gb: float
    query: str
    order: str
    tag: str
    """resource_tag(): finds this resource's instances, leftovers included."""
    ssh_public_key: str
    ready_timeout_s: float
    max_attempts: int
    max_price: float | None = None
    bid_price: float | None = None
    onstart: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    image_login: str | None = None
    user_label: str | None = None
    max_cost: float | None = None
    """$ for the whole expected run; an offer whose estimate exceeds it is never rented."""
    expected_hours: float = DEFAULT_EXPECTED_HOURS
    expected_sync_gb: float = DEFAULT_EXPECTED_SYNC_GB
    expected_pull_gb: float = DEFAULT_EXPECTED_PULL_GB

    @property
    def label(self) -> str:
        return full_label(self.tag, self.user_label)

    def estimate(self, offer: Mapping[str, Any]) -> Estimate:
        """What renting `offer` for the expected hours and transfers costs (providers/cost.py)."""
        return estimate(
            offer, disk_gb=self.disk_gb, hours=self.expected_hours,
            sync_gb=self.expected_sync_gb, pull_gb=self.expected_pull_gb,
            bid_price=self.bid_price,
        )

    def search_body(self) -> dict[str, Any]:
        return build_search(
            self.query, self.order, disk_gb=self.disk_gb,
            offer_type="bid" if self.bid_price is not None else "on-demand",
            max_price=self.max_price,
        )

    def rent_body(self) -> dict[str, Any]:
        """The body the vast CLI sends (vast-api.md §3.2), nulls included."""
        return {
            "client_id": "me", "image": self.image, "env": dict(self.env),
            "price": self.bid_price, "disk": float(self.disk_gb), "label": self.label,
            "extra": None, "onstart": self.onstart, "image_login": self.image_login,
            "python_utf8": False, "lang_utf8": False, "use_jupyter_lab": False,
            "jupyter_dir": None, "force": False, "cancel_unavail": False,
            "template_hash_id": None, "user": None, "runtype": RUNTYPE,
        }


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


def ssh_endpoint(record: Mapping[str, Any]) -> Endpoint | None:
    """Prefer the direct 22/tcp mapping on the public IP, else the proxy (vast-api.md §5)."""
    mapped = (record.get("ports") or {}).get("22/tcp") or []
    public_ip = (record.get("public_ipaddr") or "").strip()
    if mapped and public_ip:
        return Endpoint(public_ip, int(mapped[0]["HostPort"]))
    if record.get("ssh_host") and record.get("ssh_port"):
        return Endpoint(str(record["ssh_host"]).strip(), int(record["ssh_port"]))
    return None


def describe_offer(offer: Mapping[str, Any]) -> str:
    country = (offer.get("geolocation") or "??").rsplit(",", 1)[-1].strip()
    return (
        f"offer {offer.get('id')}: {offer.get('num_gpus')}x {offer.get('gpu_name')}, "
        f"${float(offer.get('dph_total') or 0):.3f}/h, {country}"
    )


class _Attempt:
    """One rented instance while create works on it: its id, machine and what it went through."""

    def __init__(self, offer: Mapping[str, Any], instance_id: int) -> None:
        self.offer = offer
        self.instance_id = instance_id
        self.states: list[str] = []

    def saw(self, state: str) -> bool:
        if self.states and self.states[-1] == state:
            return False
        self.states.append(state)
        return True


class Lifecycle:
    """Creates and deletes instances through a VastClient, reporting each state change."""

    def __init__(
        self,
        client: VastClient,
        *,
        progress: Progress,
        ssh_probe: SshProbe,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_first_s: float = POLL_FIRST_S,
        poll_max_s: float = POLL_MAX_S,
        destroy_timeout_s: float = DESTROY_VERIFY_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._progress = progress
        self._probe = ssh_probe
        self._clock = clock
        self._sleep = sleep
        self._poll_first_s = poll_first_s
        self._poll_max_s = poll_max_s
        self._destroy_timeout_s = destroy_timeout_s
        self.timings: dict[str, float] = {}
        """Of the last create, in seconds: search, rent (the rent call that won), running
        (rent to running), ssh (running to SSH accepting the key)."""
        self.chosen_estimate: Estimate | None = None
        self.chosen_offer_id: int | None = None
        """The offer the returned instance was rented from (records only carry bundle_id)."""
        """The estimate of the offer the last create rented."""

    # -- create -------------------------------------------------------------------------------

    def create(self, spec: InstanceSpec) -> dict[str, Any]:
        """Rent and wait until SSH accepts the user's key; the ready instance's record."""
        self.destroy_labelled(spec.tag, reason="leftover of an earlier create")
        self.timings = {}
        self.chosen_estimate = None
        self.chosen_offer_id = None
        started = self._clock()
        offers = self._search(spec)
        self.timings["search"] = self._clock() - started
        tried: list[str] = []
        states: list[str] = []
        cleanups: list[str] = []
        excluded_machines: set[Any] = set()
        failures = 0
        for offer in offers:
            if failures >= spec.max_attempts:
                break
            if offer.get("machine_id") in excluded_machines:
                continue
            est = spec.estimate(offer)
            self._progress(est.describe())
            rent_started = self._clock()
            try:
                attempt = self._rent(spec, offer)
            except OfferGoneError:
                tried.append(f"{offer.get('id')} (gone)")
                self._progress(f"offer {offer.get('id')} was taken meanwhile; trying the next one")
                continue
            if attempt is None:
                failures += 1
                tried.append(f"{offer.get('id')} (rent failed)")
                continue
            tried.append(f"{offer.get('id')} -> instance {attempt.instance_id}")
            self.timings["rent"] = self._clock() - rent_started
            try:
                record = self._wait_ready(spec, attempt)
            except (VastError, OSError) as exc:
                failures += 1
                states.append(f"instance {attempt.instance_id}: " + " -> ".join(attempt.states))
                cleanups.append(self._cleanup(attempt.instance_id))
                excluded_machines.add(offer.get("machine_id"))
                self._progress(f"instance {attempt.instance_id} failed: {exc}")
                continue
            except BaseException:
                self._cleanup(attempt.instance_id)
                raise
            self.chosen_estimate = est
            self.chosen_offer_id = int(offer["id"])
            return record
        cleanup = "; ".join(cleanups) if cleanups else "nothing was left rented"
        if failures == 0:
            raise NoOfferError(spec.query, offers_tried=tried, states_seen=states, cleanup=cleanup)
        raise LifecycleError(
            f"no instance became ready after {failures} attempt(s) (maxAttempts "
            f"{spec.max_attempts})",
            offers_tried=tried, states_seen=states, cleanup=cleanup,
        )

    def _search(self, spec: InstanceSpec) -> list[dict[str, Any]]:
        offers = self._client.search_offers(spec.search_body())
        asked = spec.query
        if spec.max_price is not None:  # the server's filters are best effort
            offers = [o for o in offers if float(o.get("dph_total") or 0) <= spec.max_price]
            asked += f" at most ${spec.max_price:.3f}/h"
        if not offers:
            raise NoOfferError(asked)
        affordable, refused = within_cap(
            offers, spec.max_cost, disk_gb=spec.disk_gb, hours=spec.expected_hours,
            sync_gb=spec.expected_sync_gb, pull_gb=spec.expected_pull_gb,
            bid_price=spec.bid_price,
        )
        if not affordable:
            assert refused is not None and spec.max_cost is not None
            raise CostCapError(
                over_cap_message(refused, spec.max_cost, MAX_COST_HINT),
                estimate_total=refused.total, max_cost=spec.max_cost,
            )
        if len(affordable) < len(offers):
            self._progress(f"maxCost ${spec.max_cost:.4f}: {len(offers) - len(affordable)} "
                           f"offer(s) skipped, their estimate is above it")
        offers = [dict(o) for o in affordable]
        self._progress(f"search: {len(offers)} offer(s) match; best {describe_offer(offers[0])}")
        return offers

    def _rent(self, spec: InstanceSpec, offer: Mapping[str, Any]) -> _Attempt | None:
        """Rent one offer. An ambiguous failure is resolved by the label, never by a resend."""
        try:
            instance_id = self._client.rent(int(offer["id"]), spec.rent_body())
        except (TransportError, ServerError) as exc:
            self._progress(f"rent of offer {offer.get('id')} had no clear answer ({exc}); "
                           "looking for the instance by its label")
            found = self._labelled(spec.tag)
            if not found:
                return None
            instance_id = int(found[0]["id"])
            for extra in found[1:]:
                self._cleanup(int(extra["id"]))
        self._progress(f"rented {describe_offer(offer)} -> instance {instance_id}")
        return _Attempt(offer, instance_id)

    def _wait_ready(self, spec: InstanceSpec, attempt: _Attempt) -> dict[str, Any]:
        deadline = self._clock() + spec.ready_timeout_s
        started = self._clock()
        self._client.attach_ssh_key(attempt.instance_id, spec.ssh_public_key)
        record = self._wait_running(attempt, deadline)
        running_at = self._clock()
        self.timings["running"] = running_at - started
        endpoint = ssh_endpoint(record)
        if endpoint is None:
            raise LifecycleError(f"instance {attempt.instance_id} is running but has no SSH port")
        self._wait_ssh(attempt, endpoint, deadline)
        self.timings["ssh"] = self._clock() - running_at
        self._progress(f"ssh ready at {endpoint.host}:{endpoint.port}")
        return record

    def _wait_running(self, attempt: _Attempt, deadline: float) -> dict[str, Any]:
        started = self._clock()
        for _ in self._polls(deadline):
            record = self._client.show_instance(attempt.instance_id)
            if record is None:
                attempt.saw("gone")
                raise LifecycleError(f"instance {attempt.instance_id} disappeared while starting")
            status = record.get("actual_status")
            msg = (record.get("status_msg") or "").strip()
            if attempt.saw(str(status)):
                self._progress(
                    f"instance {attempt.instance_id}: {status} after "
                    f"{self._clock() - started:.0f} s" + (f" ({msg})" if msg else "")
                )
            if status == "running" and record.get("intended_status", "running") == "running":
                return record
            if status in FAILED_STATES:
                if msg:
                    attempt.states[-1] = f"{status} ({msg})"
                raise LifecycleError(
                    f"instance {attempt.instance_id} went {status}" + (f": {msg}" if msg else "")
                )
        raise LifecycleError(
            f"instance {attempt.instance_id} not running before the deadline "
            f"(last state {attempt.states[-1] if attempt.states else 'none'})"
        )

    def _wait_ssh(self, attempt: _Attempt, endpoint: Endpoint, deadline: float) -> None:
        why = "never tried"
        for _ in self._polls(deadline):
            why = self._probe(endpoint.host, endpoint.port) or ""
            if not why:
                attempt.saw("ssh ok")
                return
            attempt.saw("ssh refused")
        raise LifecycleError(
            f"instance {attempt.instance_id}: SSH at {endpoint.host}:{endpoint.port} did not "
            f"accept the key before the deadline (last: {why})"
        )

    def _polls(self, deadline: float) -> Iterator[int]:
        """Yield until the deadline, sleeping between yields with a growing interval."""
        interval = self._poll_first_s
        n = 0
        while True:
            yield n
            n += 1
            left = deadline - self._clock()
            if left <= 0:
                return
            self._sleep(min(interval, left))
            interval = min(interval * POLL_FACTOR, self._poll_max_s)

    # -- delete -------------------------------------------------------------------------------

    def delete(self, instance_id: int | None, tag: str) -> list[int]:
        """Destroy the instance and anything else carrying its tag; verified. The ids."""
        ids = [] if instance_id is None else [instance_id]
        ids += [int(r["id"]) for r in self._labelled(tag) if int(r["id"]) not in ids]
        for iid in ids:
            self.destroy_verified(iid)
        return ids

    def destroy_labelled(self, tag: str, *, reason: str) -> list[int]:
        found = [int(r["id"]) for r in self._labelled(tag)]
        for iid in found:
            self._progress(f"instance {iid} carries label {tag!r} ({reason}); destroying it")
            self.destroy_verified(iid)
        return found

    def destroy_verified(self, instance_id: int) -> None:
        """DELETE, then poll until the API no longer knows the instance; raise if it still does."""
        existed = self._client.destroy_instance(instance_id)
        deadline = self._clock() + self._destroy_timeout_s
        for _ in self._polls(deadline):
            if self._client.show_instance(instance_id) is None:
                self._progress(
                    f"instance {instance_id} destroyed and verified gone"
                    if existed else f"instance {instance_id} was already gone"
                )
                return
        raise LifecycleError(
            f"instance {instance_id} is still listed {self._destroy_timeout_s:.0f} s after "
            "destroy: it may still bill; destroy it in the vast.ai console",
            cleanup=f"instance {instance_id} NOT verified gone",
        )

    def _cleanup(self, instance_id: int) -> str:
        try:
            self.destroy_verified(instance_id)
        except ApiError as exc:
            return f"instance {instance_id} destroy FAILED ({exc}); it may still bill"
        except LifecycleError as exc:
            return exc.cleanup or str(exc)
        return f"instance {instance_id} destroyed (verified)"

    def _labelled(self, tag: str) -> list[dict[str, Any]]:
        return [r for r in self._client.list_instances() if carries_tag(r.get("label"), tag)]


def resource_tag(project: str, stack: str, name: str) -> str:
    """Names project, stack and resource, so leftovers can always be found."""
    return f"{LABEL_TAG_PREFIX}{project}/{stack}/{name}"


def full_label(tag: str, user_label: str | None) -> str:
    return f"{user_label} [{tag}]" if user_label else tag


def carries_tag(label: str | None, tag: str) -> bool:
    """True when the label is ours for that resource (the tag alone, or a user label + [tag])."""
    return bool(label) and (label == tag or label.endswith(f"[{tag}]"))
