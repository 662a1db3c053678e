"""Pure parts of the workflow: outputs, deploy's settings and plan, sweep's labels, tables."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from providers.cost import estimate
from providers.labels import Tag, full_label, parse_tag, resource_tag
from providers.offers import Candidate
from remote.batch import parse_tasks
from workflow.connect import target_for
from workflow.deploy import DeployOptions, plan, settings_from
from workflow.errors import OptionError, OutputsError
from workflow.outputs import instance_id_of, parse_outputs
from workflow.pulumi import Stack
from workflow.pulumi_env import ROOT
from workflow.search import offer_table
from workflow.source import Source, source_for
from workflow.stacks import StackScan, urn_names
from workflow.sweep import in_flight, leftovers

ONE = {"instance_id": 7, "ssh_host": "1.2.3.4", "ssh_port": 40022, "ssh_user": "root",
       "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.4, "status": "running",
       "appDir": "/app", "workDir": "/data", "sshPublicKey": "~/.ssh/k.pub"}


def test_single_instance_outputs_sit_at_the_top_level() -> None:
    out = parse_outputs("exp", ONE)
    inst = out.pick()
    assert (inst.instance_id, inst.ssh_host, inst.ssh_port) == (7, "1.2.3.4", 40022)
    assert (out.app_dir, out.work_dir, out.ssh_public_key) == ("/app", "/data", "~/.ssh/k.pub")


def test_an_unreadable_ssh_key_is_refused_before_any_connect(tmp_path: Path) -> None:
    out = parse_outputs("exp", ONE)
    for missing in (tmp_path / "no_such_key", tmp_path):
        with pytest.raises(OptionError) as err:
            target_for(out, out.pick(), ssh_key=str(missing))
        assert "--ssh-key" in str(err.value) and str(missing) in str(err.value)
    key = tmp_path / "id_test"
    key.write_text("not checked here: the SSH login says if it is no key")
    assert target_for(out, out.pick(), ssh_key=str(key)).key_path == key


def test_several_instances_need_an_id() -> None:
    rows = [{**ONE, "instance_id": 7}, {**ONE, "instance_id": 8, "ssh_port": 40023}]
    out = parse_outputs("exp", {"instances": rows})
    assert out.pick(8).ssh_port == 40023
    with pytest.raises(OutputsError, match="pass --instance ID"):
        out.pick()
    with pytest.raises(OutputsError, match="has no instance 9"):
        out.pick(9)


def test_a_stack_that_is_not_up_says_what_to_do() -> None:
    with pytest.raises(OutputsError, match="inv up"):
        parse_outputs("exp", {"appDir": "/app"})


def test_flags_win_over_the_old_scripts_env_vars() -> None:
    env = {"VAST_IMAGE": "env/img", "VAST_DISK": "80", "VAST_QUERY": "gpu_ram >= 40"}
    assert settings_from({"image": "flag/img", "disk": None, "query": ""}, env) == {
        "image": "flag/img", "disk": "80", "query": "gpu_ram >= 40"}


def test_dry_run_plan_names_every_step() -> None:
    opts = DeployOptions(tasks=parse_tasks("a 1\nb 'x y'\n"), job="j1", base_stack="exp",
                         settings={"image": "img"})
    steps = plan(opts)
    assert steps[0].startswith("create stack 'exp-j1' from config of stack 'exp'")
    assert any(s.startswith("sync") for s in steps)
    assert any("a 1" in s for s in steps) and any("b 'x y'" in s for s in steps)
    assert "pull workDir" in " ".join(steps) and steps[-1].startswith("pulumi destroy")
    kept = plan(DeployOptions(tasks=[], job="j", keep=True, no_sync=True, no_pull=True))
    assert not any(s.startswith(("sync", "pull", "pulumi destroy")) for s in kept)
    assert kept[-1].startswith("keep the instance")


def test_our_labels_are_recognised_and_only_ours() -> None:
    tag = resource_tag("vast-gpu", "exp1", "gpu")
    assert parse_tag(full_label(tag, "my run")) == Tag("vast-gpu", "exp1", "gpu")
    assert parse_tag(tag) == Tag("vast-gpu", "exp1", "gpu")
    assert parse_tag("a label of someone else") is None
    assert parse_tag(None) is None
    rows = [{"id": 1, "label": tag}, {"id": 2, "label": full_label(tag, "x")},
            {"id": 3, "label": "theirs"}]
    assert [t.instance_id for t in leftovers(rows, StackScan(holders={1: "exp1"}))] == [2]


def test_an_instance_whose_create_is_pending_is_in_flight_not_a_leftover() -> None:
    urn = "urn:pulumi:local-bob::vast-gpu::pulumi-python:dynamic/vast:Instance::gpu"
    assert urn_names(urn) == ("vast-gpu", "local-bob", "gpu")
    scan = StackScan(holders={1: "local-bob"}, creating={urn_names(urn)})
    rows = [{"id": 1, "label": resource_tag("vast-gpu", "local-alice", "gpu")},
            {"id": 2, "label": resource_tag("vast-gpu", "local-bob", "gpu")},
            {"id": 3, "label": resource_tag("vast-gpu", "local-bob", "gpu2")}]
    assert [t.instance_id for t in in_flight(rows, scan)] == [2]
    assert [t.instance_id for t in leftovers(rows, scan)] == [3]


def test_offer_table_has_the_columns_a_person_chooses_by() -> None:
    offer = {"id": 11, "num_gpus": 1, "gpu_name": "RTX 4090", "gpu_ram": 24564,
             "dph_total": 0.3512, "reliability": 0.991, "cuda_max_good": 12.4,
             "inet_down": 803.8, "disk_space": 120, "geolocation": "Quebec, CA"}
    est = estimate(offer, disk_gb=60, hours=1, sync_gb=0, pull_gb=0)
    table = offer_table([Candidate(offer, est)])
    header, row = table.splitlines()
    assert header.split()[:4] == ["offer", "n", "gpu", "vram"]
    assert "RTX 4090" in row and "0.351" in row and " 25 " in row and "Quebec, CA" in row


def test_an_instance_id_from_the_command_line_matches_as_a_string() -> None:
    rows = [{**ONE, "instance_id": 13600001}, {**ONE, "instance_id": 13600002, "ssh_port": 2}]
    out = parse_outputs("exp", {"instances": rows})
    assert out.pick("13600002").ssh_port == 2  # invoke hands --instance over as text
    assert out.pick(" 13600001 ").instance_id == 13600001
    with pytest.raises(OptionError, match="positive number"):
        out.pick("abc")
    assert instance_id_of(None) is None and instance_id_of("") is None


def test_the_synced_tree_is_the_flag_then_the_stack_setting_then_where_you_are(
    tmp_path: Path,
) -> None:
    assert source_for(str(tmp_path), None).describe() == f"{tmp_path} (--src)"
    here = tmp_path / "proj"
    here.mkdir()
    assert source_for(None, None, cwd=here) == Source(here, "the current directory")
    with pytest.raises(OptionError, match="vast-gpu's own checkout"):
        source_for(None, None, cwd=ROOT)
    missing = Source(tmp_path / "nope", "--src")
    with pytest.raises(OptionError, match="does not exist"):
        missing.check()
    assert "no ./run-direct" in Source(here, "x").warnings()[0]
    (here / "run-direct").write_text("#!/bin/sh\n")
    assert Source(here, "x").warnings() == []


def test_a_quiet_stack_shows_each_provider_line_once_and_nothing_else() -> None:
    printed = io.StringIO()
    stack = Stack("s", verbose=False, out=printed)
    lines = ["Updating (s):\n", " +  pulumi:pulumi:Stack vast-gpu-s creating (0s) vast-gpu: "
             "rented offer 1 -> instance 2\n", "Diagnostics:\n", "    vast-gpu: rented offer 1 "
             "-> instance 2\n", "    vast-gpu: ssh ready at h:1\n", "Resources:\n",
             "If you want to remove the stack completely, run `pulumi stack rm s`.\n"]
    proc = subprocess.Popen(["printf", "%s", "".join(lines)], stdout=subprocess.PIPE, text=True)
    seen: list[str] = []
    stack._echo(proc, seen, set())
    proc.wait()
    assert printed.getvalue().splitlines() == ["vast-gpu: rented offer 1 -> instance 2",
                                               "vast-gpu: ssh ready at h:1"]
    assert seen == lines  # all of it kept, to show if the command fails
