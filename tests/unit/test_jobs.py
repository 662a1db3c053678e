"""Job names (one safe path segment) and the job `inv pull` continues."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow import jobs
from workflow.errors import OptionError


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", ".", "", "-rf",
                                  "x" * 81, "has space", "tab\there", "ünï"])
def test_a_job_name_that_is_not_one_safe_segment_is_refused(name: str) -> None:
    with pytest.raises(OptionError, match="one folder name under work_remote/"):
        jobs.check_job(name)


@pytest.mark.parametrize("name", ["first-try", "vast-gpu-20261202_101010", "a.b_c-1", "x" * 80])
def test_safe_job_names_pass(name: str) -> None:
    assert jobs.check_job(name) == name


def test_pull_continues_the_latest_job_of_the_stack(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "STATE_DIR", tmp_path)
    assert jobs.latest_job("exp") is None
    ran = jobs.job_for_run("exp", None)
    assert ran.startswith(jobs.JOB_PREFIX)
    assert jobs.job_for_pull("exp", None) == (ran, "the stack's latest job")
    assert jobs.job_for_pull("exp", "other") == ("other", "--job")
    assert jobs.job_for_run("exp", "second") == "second"
    assert jobs.job_for_pull("exp", None)[0] == "second"
    assert jobs.job_for_pull("other-stack", None)[1].startswith("a new job name")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / jobs.LATEST_JOB).write_text("../../etc\n")  # never trusted blindly
    assert jobs.latest_job("bad") is None
