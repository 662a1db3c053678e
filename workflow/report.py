"""The run report: what a deploy or a run did, how long each phase took, and what it cost.

Written to `work_remote/<job>/report.json` and summed up in a few printed lines. Phase times
are measured here with time.monotonic(), except rent, running and ssh, which the provider
measured inside `pulumi up` and left in the stack outputs (`create_timings`). Dollars are the
instance's prices times measured seconds and bytes, marked `"estimated": true`: vast.ai's API
reports no charges per instance (docs/vast-api.md, "Billing").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from providers.cost import Rates, run_cost
from remote.batch import BatchResult
from remote.pulleach import EachPull

REPORT_NAME = "report.json"
PHASE_ORDER = ("rent", "running", "ssh", "up", "sync", "tasks", "pull", "destroy")
"""rent, running, ssh: inside `up` (the provider's timings); the rest measured here."""
PROVIDER_PHASES = ("rent", "running", "ssh")
OFFER_KEYS = ("offer_id", "gpu_name", "num_gpus", "gpu_ram_gb", "dph_total", "geolocation")
MACHINE_KEYS = ("instance_id", "machine_id", "ssh_host", "ssh_port", "public_ip", "started_at")


def instance_outputs(outputs: Mapping[str, Any], instance_id: int) -> Mapping[str, Any]:
    """One instance's raw outputs: the top level with count 1, else its `instances` entry."""
    for row in outputs.get("instances") or [outputs]:
        if isinstance(row, Mapping) and row.get("instance_id") == instance_id:
            return row
    return {}


@dataclass
class RunReport:
    kind: str
    """"deploy" or "run"."""
    job: str
    stack: str
    started_at: float = field(default_factory=time.time)
    offer: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_received: int = 0
    estimate: dict[str, Any] | None = None
    """The provider's estimate before it rented (stack output `estimate`)."""
    dollars: dict[str, Any] | None = None
    outcome: str = "ok"
    kept: bool = False
    used: list[dict[str, Any]] = field(default_factory=list)
    """Instances the job used before the one it has now (lost ones), each with its cost."""
    instances: list[dict[str, Any]] = field(default_factory=list)
    """Every instance the job used with its cost, once finish() ran (only when several)."""
    pulls: list[dict[str, Any]] = field(default_factory=list)
    """The background pulls of --pull-each (remote/pulleach.py)."""
    _rates: Rates | None = None
    _marks: dict[str, float] = field(default_factory=dict)
    _bytes_before: tuple[int, int] = (0, 0)
    """bytes sent and received when the current instance took over: the earlier ones'."""

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase; recorded even when it raises (the report says how far it got)."""
        start = time.monotonic()
        self._marks.setdefault(f"{name}_start", start)
        try:
            yield
        finally:
            end = time.monotonic()
            self._marks[f"{name}_end"] = end
            self.phases[name] = round(self.phases.get(name, 0.0) + end - start, 3)

    def set_instance(self, outputs: Mapping[str, Any], instance_id: int) -> None:
        """Offer, machine, prices and the provider's timings from the stack outputs."""
        row = instance_outputs(outputs, instance_id)
        self.offer = {k: row.get(k) for k in OFFER_KEYS}
        self.machine = {k: row.get(k) for k in MACHINE_KEYS}
        for name in PROVIDER_PHASES:
            value = (row.get("create_timings") or {}).get(name)
            if isinstance(value, int | float):
                self.phases[name] = round(float(value), 3)
        self.estimate = row.get("estimate")
        # The output offer_id is the record's bundle_id; the id `inv search` shows and the
        # provider rented is the estimate's.
        rented = (self.estimate or {}).get("offer_id")
        if rented is not None:
            self.offer = {"offer_id": rented, "bundle_id": self.offer.get("offer_id"),
                          **{k: v for k, v in self.offer.items() if k != "offer_id"}}
        pricing = row.get("pricing")
        if isinstance(pricing, Mapping):
            try:
                self._rates = Rates(**{k: float(pricing[k]) for k in Rates.__dataclass_fields__})
            except (KeyError, TypeError, ValueError):
                self._rates = None

    def add_pulls(self, pulls: Sequence[EachPull]) -> None:
        """The background pulls of --pull-each: each in the report, their bytes received."""
        self.pulls += [p.to_json() for p in pulls]
        self.bytes_received += sum(p.nbytes for p in pulls)

    def set_batch(self, batch: BatchResult) -> None:
        self.tasks = [r.to_json() for r in batch.results]

    def tasks_from_summary(self, logs_dir: Path) -> None:
        """A batch cut short raised before returning its result: its summary.json has the
        tasks that finished."""
        try:
            data = json.loads((logs_dir / "summary.json").read_text())
        except (OSError, ValueError):
            return
        self.tasks = list(data.get("tasks") or [])

    def retire(self, outcome: str) -> None:
        """The current instance is done with (lost, then destroyed): keep it, priced up to
        now, in `used`; the next set_instance and up start the next one's account."""
        self.used.append(self._instance_row(outcome, self._instance_cost(time.monotonic())))
        self._bytes_before = (self.bytes_sent, self.bytes_received)
        self._rates = None

    def _instance_row(self, outcome: str, cost: dict[str, Any] | None) -> dict[str, Any]:
        return {"instance_id": self.machine.get("instance_id"),
                "machine_id": self.machine.get("machine_id"),
                "offer_id": self.offer.get("offer_id"), "gpu_name": self.offer.get("gpu_name"),
                "outcome": outcome, "dollars": cost}

    def _instance_cost(self, end: float) -> dict[str, Any] | None:
        """GPU from running to `end`, storage from rent on, bytes since it took over."""
        if self._rates is None:
            return None
        if "up_end" in self._marks:  # a deploy: the instance lived from inside `up` to `end`
            after_up = max(0.0, end - self._marks["up_end"])
            gpu_s = after_up + self.phases.get("ssh", 0.0)
            storage_s = gpu_s + self.phases.get("running", 0.0)
        else:  # a run on an existing instance: only the time of its tasks is this run's
            gpu_s = storage_s = self.phases.get("tasks", 0.0)
        sent, received = self._bytes_before
        return run_cost(self._rates, gpu_seconds=gpu_s, storage_seconds=storage_s,
                        sync_bytes=self.bytes_sent - sent,
                        pull_bytes=self.bytes_received - received)

    def finish(self) -> None:
        """Price the run: per instance, GPU from running to destroyed (or now), storage from
        rent on; with several instances the total is their sum."""
        current = self._instance_cost(self._marks.get("destroy_end", time.monotonic()))
        if self.used:
            rows = [*self.used, self._instance_row("kept" if self.kept else "the last one",
                                                   current)]
            self.dollars = _sum_costs([r["dollars"] for r in rows if r["dollars"]])
            self.instances = rows
        else:
            self.dollars = current
        if self.dollars and self.kept:
            self.dollars["basis"] += "; the instance was kept and still bills"

    def to_json(self) -> dict[str, Any]:
        phases = {k: self.phases[k] for k in PHASE_ORDER if k in self.phases}
        return {
            "kind": self.kind, "job": self.job, "stack": self.stack,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_at)),
            "outcome": self.outcome, "kept": self.kept, "offer": self.offer,
            "machine": self.machine, "phases_s": phases, "tasks": self.tasks,
            "bytes": {"sent": self.bytes_sent, "received": self.bytes_received},
            "estimate_before_rent": self.estimate, "dollars": self.dollars,
            "instances": self.instances, "pulls_each": self.pulls,
        }

    def write(self, results_dir: Path) -> Path:
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / REPORT_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path

    def summary(self) -> list[str]:
        """The printed summary: a few lines, each a fact of the report."""
        lines = [f"{self.kind} {self.job}: {self.outcome}"]
        if self.offer.get("offer_id") is not None or self.machine.get("instance_id"):
            lines.append(
                f"  offer {self.offer.get('offer_id')}: {self.offer.get('num_gpus')}x "
                f"{self.offer.get('gpu_name')}, {self.offer.get('geolocation')}; instance "
                f"{self.machine.get('instance_id')} on machine {self.machine.get('machine_id')}"
            )
        phases = [f"{k} {self.phases[k]:.1f}s" for k in PHASE_ORDER if k in self.phases]
        if phases:
            lines.append("  phases: " + ", ".join(phases))
        for t in self.tasks:
            code = "-" if t.get("exit_code") is None else t.get("exit_code")
            lines.append(f"  task {t.get('index')}: exit {code}, {t.get('duration_s', 0):.1f}s, "
                         f"{t.get('status')}: {t.get('line')}")
        lines.append(f"  bytes: {self.bytes_sent} sent, {self.bytes_received} received")
        if self.pulls:
            got = sum(int(p.get("bytes") or 0) for p in self.pulls)
            took = sum(float(p.get("seconds") or 0.0) for p in self.pulls)
            lines.append(f"  pull-each: {len(self.pulls)} pull(s) as tasks ended, {got} bytes "
                         f"in {took:.2f} s")
        for row in self.instances:
            cost = row["dollars"]
            dollars = f"${cost['total']:.4f} estimated" if cost else "cost unknown"
            lines.append(f"  instance {row['instance_id']} on machine {row['machine_id']}: "
                         f"{row['outcome']}; {dollars}")
        if self.dollars:
            d = self.dollars
            lines.append(
                f"  cost: ${d['total']:.4f} estimated (GPU ${d['gpu']:.4f} + storage "
                f"${d['storage']:.4f} + bandwidth ${d['bandwidth']:.4f}); vast.ai reports no "
                "charges per instance"
            )
        return lines

    def save_and_print(self, results_dir: Path, out: TextIO, prefix: str) -> None:
        """Write and print; a report that cannot be written warns and never hides the run's
        own outcome."""
        self.finish()
        try:
            path = self.write(results_dir)
        except OSError as exc:
            print(f"{prefix}warning: could not write the run report: {exc}", file=out)
            path = None
        for line in self.summary():
            print(f"{prefix}{line}", file=out)
        if path is not None:
            print(f"{prefix}report: {path}", file=out)


def _sum_costs(costs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Several instances' run_cost dicts as one: the amounts and seconds added up."""
    if not costs:
        return None
    total = dict(costs[-1])
    for key in ("gpu_seconds", "storage_seconds", "gpu", "storage", "bandwidth", "total"):
        total[key] = sum(c[key] for c in costs)
    total["basis"] = costs[-1]["basis"] + f"; summed over {len(costs)} instances"
    return total
