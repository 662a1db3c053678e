"""Rent, wait and destroy: the money-safe life of one vast.ai instance. No Pulumi here.

The rule everything below serves: once this code has rented an instance, it either hands that
instance back ready (running, and SSH accepting the user's key) or destroys it and checks that
it is gone, before it raises. Pulumi records nothing when create raises, so an instance that
create leaked would bill with nobody tracking it. Leftovers of a create that was killed before
it could clean up (SIGKILL, power loss) carry the resource's label (providers/labels.py), and
the next create or delete finds and destroys them.

Two rules about order: a known instance is destroyed before anything else is asked of the API
(a failing list call must never stand between it and its DELETE), and a rent whose answer was
lost is resolved by looking the label up, never by renting again; when that look-up cannot
tell, the error says plainly what may bill and how to find it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.api import VastClient
from providers.errors import (
    ApiError,
    LifecycleError,
    MaybeBillingError,
    NoOfferError,
    OfferGoneError,
    ServerError,
    TransportError,
    VastError,
)
from providers.labels import carries_tag, full_label
from providers.offers import Candidate, describe_offer, select
from providers.records import STARTING_STATES, Endpoint, ssh_endpoint
from providers.settings import Settings
from remote.watchdog import onstart_with_watchdog

POLL_FIRST_S = 1.0
POLL_MAX_S = 5.0
POLL_FACTOR = 1.5
DESTROY_VERIFY_TIMEOUT_S = 120.0
LOOKUP_DEADLINE_S = 180.0
"""How long a lost rent answer is looked up by label: long enough to outlast an API burst."""
LOGS_TAIL = 200
LOGS_SHOWN = 12
LOGS_WAIT_S = 8.0
RUNTYPE = "ssh_direc ssh_proxy"  # the CLI's spelling (sic): direct port 22 plus the proxy
SWEEP_HINT = "`inv sweep` lists instances carrying our labels that no stack knows; --yes destroys"

Progress = Callable[[str], None]
SshProbe = Callable[[str, int], "str | None"]
"""(host, port) -> None once a login with the user's key works, else why not (one try)."""


@dataclass(frozen=True)
class InstanceSpec:
    """Everything a create needs: the stack's settings plus what the provider resolved."""

    settings: Settings
    tag: str
    """providers.labels.resource_tag(): finds this resource's instances, leftovers included."""
    ssh_public_key: str
    image_login: str | None = None
    avoid: Mapping[Any, str] = field(default_factory=dict)
    """Machine id -> why it is not to be rented again (it failed before)."""

    @property
    def label(self) -> str:
        return full_label(self.tag, self.settings.label)

    def rent_body(self) -> dict[str, Any]:
        """The body the vast CLI sends (docs/vast-api.md), nulls included.

        ``cancel_unavail``: a machine whose GPUs are busy refuses the rent instead of creating
        a stopped instance that bills storage.
        """
        s = self.settings
        return {
            "client_id": "me", "image": s.image, "env": dict(s.env), "price": s.bid_price,
            "disk": float(s.disk_gb), "label": self.label, "extra": None,
            "onstart": onstart_with_watchdog(s.onstart, s.deadman),
            "image_login": self.image_login, "python_utf8": False, "lang_utf8": False,
            "use_jupyter_lab": False, "jupyter_dir": None, "force": False,
            "cancel_unavail": True, "template_hash_id": None, "user": None,
            "runtype": RUNTYPE,
        }


@dataclass(frozen=True)
class Created:
    """What create found: the ready instance, the offer it came from, and how long each step
    took (search, rent, running: rent to running, ssh: running to SSH accepting the key)."""

    record: dict[str, Any]
    candidate: Candidate
    timings: dict[str, float]


class _Attempt:
    """One rented instance while create works on it: its id, offer and what it went through."""

    def __init__(self, candidate: Candidate, instance_id: int) -> None:
        self.candidate = candidate
        self.instance_id = instance_id
        self.states: list[str] = []

    def saw(self, state: str) -> bool:
        if self.states and self.states[-1] == state:
            return False
        self.states.append(state)
        return True


class _NotFound(Exception):
    """A lost rent answer's look-up found no instance: the rent did not happen."""


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
        lookup_deadline_s: float = LOOKUP_DEADLINE_S,
    ) -> None:
        self._client = client
        self._progress = progress
        self._probe = ssh_probe
        self._clock = clock
        self._sleep = sleep
        self._poll_first_s = poll_first_s
        self._poll_max_s = poll_max_s
        self._destroy_timeout_s = destroy_timeout_s
        self._lookup_deadline_s = lookup_deadline_s

    # -- create -------------------------------------------------------------------------------

    def create(self, spec: InstanceSpec) -> Created:
        """Rent and wait until SSH accepts the user's key."""
        self.destroy_labelled(spec.tag, reason="leftover of an earlier create")
        timings: dict[str, float] = {}
        started = self._clock()
        selection = select(self._client.search_offers, spec.settings, avoid=spec.avoid)
        timings["search"] = self._clock() - started
        for note in selection.notes:
            self._progress(note)
        bid = spec.settings.bid_price
        self._progress(f"search: {len(selection.candidates)} offer(s) to choose from; best "
                       f"{describe_offer(selection.candidates[0].offer, bid)}")
        tried: list[str] = []
        states: list[str] = []
        cleanups: list[str] = []
        logs: list[str] = []
        excluded_machines: set[Any] = set()
        failures = 0
        for candidate in selection.candidates:
            if failures >= spec.settings.max_attempts:
                break
            if candidate.machine_id in excluded_machines:
                continue
            self._progress(candidate.estimate.describe())
            rent_started = self._clock()
            try:
                attempt = self._rent(spec, candidate)
            except OfferGoneError as exc:
                tried.append(f"{candidate.offer_id} (gone)")
                why = ("was taken meanwhile" if exc.error in (None, "no_such_ask")
                       else f"cannot start now ({exc.error}: {exc.msg})")
                self._progress(f"offer {candidate.offer_id} {why}; trying the next one")
                continue
            except _NotFound:
                failures += 1
                tried.append(f"{candidate.offer_id} (rent failed, no instance made)")
                continue
            tried.append(f"{candidate.offer_id} -> instance {attempt.instance_id}")
            timings["rent"] = self._clock() - rent_started
            try:
                record = self._wait_ready(spec, attempt, timings)
            except (VastError, OSError) as exc:
                failures += 1
                self._progress(f"instance {attempt.instance_id} failed: {exc}")
                logs += self._last_logs(attempt.instance_id)
                states.append(f"instance {attempt.instance_id}: " + " -> ".join(attempt.states))
                cleanups.append(self._cleanup(attempt.instance_id))
                excluded_machines.add(candidate.machine_id)
                continue
            except BaseException:
                self._cleanup(attempt.instance_id)
                raise
            return Created(record, candidate, timings)
        cleanup = "; ".join(cleanups) if cleanups else "nothing was left rented"
        if failures == 0:
            raise NoOfferError(spec.settings.query,
                               detail=f"every offer tried was taken: {', '.join(tried)}")
        raise LifecycleError(
            f"no instance became ready after {failures} attempt(s) (maxAttempts "
            f"{spec.settings.max_attempts})",
            offers_tried=tried, states_seen=states, cleanup=cleanup, logs=logs,
        )

    def _rent(self, spec: InstanceSpec, candidate: Candidate) -> _Attempt:
        """Rent one offer. An ambiguous failure is resolved by the label, never by a resend."""
        try:
            instance_id = self._client.rent(candidate.offer_id, spec.rent_body())
        except (TransportError, ServerError) as exc:
            self._progress(f"rent of offer {candidate.offer_id} had no clear answer ({exc}); "
                           f"looking for the instance by its label {spec.tag!r}")
            found = self._lookup_after_lost_rent(spec, candidate, exc)
            instance_id = int(found[0]["id"])
            for extra in found[1:]:
                self._cleanup(int(extra["id"]))
        self._progress(f"rented {describe_offer(candidate.offer, spec.settings.bid_price)} -> "
                       f"instance {instance_id}")
        return _Attempt(candidate, instance_id)

    def _lookup_after_lost_rent(self, spec: InstanceSpec, candidate: Candidate,
                                cause: ApiError) -> list[dict[str, Any]]:
        deadline = self._clock() + self._lookup_deadline_s
        last: ApiError | None = None
        for _ in self._polls(deadline):
            try:
                found = self._labelled(spec.tag)
            except ApiError as exc:
                last = exc
                self._progress(f"label look-up failed ({exc}); trying again until "
                               f"{self._lookup_deadline_s:.0f} s have passed")
                continue
            if not found:
                raise _NotFound()
            return found
        raise MaybeBillingError(
            f"an instance may be billing that no state knows: the rent of offer "
            f"{candidate.offer_id} had no clear answer ({cause}), and for "
            f"{self._lookup_deadline_s:.0f} s the instance list could not be read to find it "
            f"(last: {last}). Once the API answers, {SWEEP_HINT}; look for the label "
            f"{spec.label!r}",
            label=spec.label, offers_tried=[f"{candidate.offer_id} (answer lost)"],
            cleanup="NOT known: see above",
        )

    def _wait_ready(self, spec: InstanceSpec, attempt: _Attempt,
                    timings: dict[str, float]) -> dict[str, Any]:
        deadline = self._clock() + spec.settings.ready_timeout_s
        started = self._clock()
        self._client.attach_ssh_key(attempt.instance_id, spec.ssh_public_key)
        record = self._wait_running(attempt, deadline)
        running_at = self._clock()
        timings["running"] = running_at - started
        endpoint = ssh_endpoint(record)
        if endpoint is None:
            raise LifecycleError(f"instance {attempt.instance_id} is running but has no SSH port")
        self._wait_ssh(attempt, endpoint, deadline)
        timings["ssh"] = self._clock() - running_at
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
            if status not in STARTING_STATES:
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

    def _last_logs(self, instance_id: int) -> list[str]:
        """The failed instance's last log lines for the story; never in the way of its destroy
        (a short wait, and any failure is only noted)."""
        try:
            text = self._client.instance_logs(instance_id, tail=LOGS_TAIL, wait_s=LOGS_WAIT_S)
        except VastError as exc:
            return [f"instance {instance_id}: logs unavailable ({exc})"]
        lines = [line for line in text.splitlines() if line.strip()][-LOGS_SHOWN:]
        return [f"instance {instance_id}: {line}" for line in lines] or [
            f"instance {instance_id}: logs empty"]

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
        """Destroy the known instance first (verified), then anything else carrying its tag.

        A failing tag look-up never delays the known DELETE; it is raised afterwards, saying
        the known one is gone, so Pulumi keeps the resource and a rerun looks again.
        """
        done: list[int] = []
        if instance_id is not None:
            self.destroy_verified(instance_id)
            done.append(instance_id)
        try:
            others = [int(r["id"]) for r in self._labelled(tag) if int(r["id"]) not in done]
        except ApiError as exc:
            known = (f"instance {instance_id} destroyed (verified)" if done
                     else "no instance was known")
            raise MaybeBillingError(
                f"{known}, but the look-up for other instances labelled {tag!r} failed ({exc}): "
                f"run this again once the API answers, or {SWEEP_HINT}",
                label=tag, cleanup=known,
            ) from exc
        for other in others:
            self._progress(f"instance {other} also carries label {tag!r}; destroying it")
            self.destroy_verified(other)
            done.append(other)
        return done

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
