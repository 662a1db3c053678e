"""workflow/report.py: what report.json holds and how a run is priced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.cost import BYTES_PER_GB, SECONDS_PER_HOUR
from remote.batch import BatchResult, Task, TaskResult
from workflow.report import RunReport

OUTPUTS = {
    "instance_id": 7, "offer_id": 99, "machine_id": 5, "gpu_name": "RTX 4090", "num_gpus": 1,
    "geolocation": "Korea, KR", "ssh_host": "127.0.0.1", "ssh_port": 2222,
    "pricing": {"gpu_per_hour": 0.72, "storage_per_hour": 0.036, "inet_down_per_gb": 0.01,
                "inet_up_per_gb": 0.02},
    "create_timings": {"search": 0.1, "rent": 0.2, "running": 3.0, "ssh": 1.0},
    "estimate": {"total": 1.23},
}


def batch(tmp_path: Path) -> BatchResult:
    results = [TaskResult(Task("write a", 1), 1, 0, 1.5, tmp_path / "01-write.log", "ok"),
               TaskResult(Task("fail", 2), 2, 4, 0.5, tmp_path / "02-fail.log", "failed")]
    return BatchResult(results=results, logs_dir=tmp_path, total=2)


def test_deploy_report_prices_from_running_to_destroyed(tmp_path: Path):
    report = RunReport("deploy", "job1", "local-job1")
    with report.phase("up"):
        pass
    report.set_instance(OUTPUTS, 7)
    report.set_batch(batch(tmp_path))
    report.bytes_sent, report.bytes_received = BYTES_PER_GB, 2 * BYTES_PER_GB
    with report.phase("destroy"):
        pass
    report.finish()
    after_up = report._marks["destroy_end"] - report._marks["up_end"]
    d = report.dollars
    assert d is not None and d["estimated"] is True
    assert d["gpu_seconds"] == pytest.approx(after_up + 1.0, abs=1e-3)  # + ssh
    assert d["storage_seconds"] == pytest.approx(after_up + 4.0, abs=1e-3)  # + running + ssh
    assert d["bandwidth"] == pytest.approx(0.01 + 0.04)
    assert d["gpu"] == pytest.approx(0.72 * d["gpu_seconds"] / SECONDS_PER_HOUR, rel=1e-3)

    path = report.write(tmp_path / "out")
    data = json.loads(path.read_text())
    assert list(data["phases_s"]) == ["rent", "running", "ssh", "up", "destroy"]
    assert data["offer"]["offer_id"] == 99 and data["machine"]["machine_id"] == 5
    assert [t["exit_code"] for t in data["tasks"]] == [0, 4]
    assert data["bytes"] == {"sent": BYTES_PER_GB, "received": 2 * BYTES_PER_GB}
    assert data["estimate_before_rent"] == {"total": 1.23}
    text = "\n".join(report.summary())
    assert "offer 99" in text and "machine 5" in text and "exit 4" in text
    assert "estimated" in text


def test_run_report_prices_only_its_tasks(tmp_path: Path):
    report = RunReport("run", "job2", "s")
    report.set_instance({"instances": [{**OUTPUTS, "instance_id": 8}, OUTPUTS]}, 7)
    with report.phase("tasks"):
        pass
    report.finish()
    assert report.machine["instance_id"] == 7
    assert report.dollars is not None
    assert report.dollars["gpu_seconds"] == report.dollars["storage_seconds"]
    assert report.dollars["gpu_seconds"] == pytest.approx(report.phases["tasks"], abs=1e-3)


def test_no_prices_means_no_dollars_rather_than_a_guess(tmp_path: Path):
    report = RunReport("run", "job3", "s")
    report.set_instance({"instance_id": 7}, 7)
    report.finish()
    assert report.dollars is None
    assert json.loads(report.write(tmp_path).read_text())["dollars"] is None
