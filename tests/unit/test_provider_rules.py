"""Pure rules of the provider: diff, input checks, labels, SSH endpoint choice."""

from __future__ import annotations

import pickle

import pytest
from pulumi.runtime.rpc import UNKNOWN

from providers.instance import VastInstanceProvider
from providers.labels import carries_tag, full_label, resource_tag
from providers.records import ssh_endpoint
from providers.settings import problems


def validate_inputs(inputs: dict) -> list[tuple[str, str]]:
    """(key, reason) of each bad input, as the provider's check reports them."""
    ours = {k: v for k, v in inputs.items() if k not in ("tag", "__provider")}
    return [(e.key.split(":", 1)[-1], str(e)) for e in problems(ours, unknown="ignore")]

BASE = {
    "image": "ghcr.io/coriou/voice-tools:cuda", "disk": 60, "query": "gpu_ram >= 20",
    "order": "dph+", "tag": "vast-gpu:vast-gpu/local/gpu", "label": "exp",
    "sshPublicKey": "ssh-ed25519 AAAA me", "readyTimeout": 900, "maxAttempts": 3,
    "__provider": "pickled-code-v1",
}


def diff(olds: dict, news: dict):
    return VastInstanceProvider().diff("1", olds, news)


@pytest.mark.parametrize(
    ("key", "value"),
    [("image", "pytorch/pytorch"), ("disk", 80), ("query", "gpu_ram >= 40"),
     ("order", "score-"), ("onstart", "echo hi"), ("env", {"A": "1"}), ("bidPrice", 0.2)],
)
def test_machine_changes_replace_deleting_first(key: str, value: object) -> None:
    result = diff(BASE, {**BASE, key: value})
    assert result.changes is True
    assert result.replaces == [key]
    assert result.delete_before_replace is True


@pytest.mark.parametrize(
    ("key", "value"), [("label", "renamed"), ("sshPublicKey", "ssh-ed25519 BBBB new"),
                       ("readyTimeout", 60), ("maxAttempts", 5)],
)
def test_other_changes_update_in_place(key: str, value: object) -> None:
    result = diff(BASE, {**BASE, key: value})
    assert result.changes is True
    assert result.replaces == []


def test_provider_code_change_alone_is_no_change() -> None:
    result = diff(BASE, {**BASE, "__provider": "pickled-code-v2"})
    assert result.changes is False


def test_outputs_in_olds_do_not_count_as_changes() -> None:
    olds = {**BASE, "instance_id": 7, "ssh_port": 2222, "status": "running"}
    assert diff(olds, BASE).changes is False


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [("disk", 4, ">= 8"), ("disk", "abc", "must be a number"), ("image", "", "Docker image"),
     ("image", "a b", "Docker image"),
     ("image", "img;rm -rf", "Docker image"), ("disk", 0, ">= 8"), ("maxAttempts", 0, ">= 1"),
     ("readyTimeout", 0, "above 0"),
     ("maxPricePerHour", 0, "above 0"), ("bidPrice", 500, "between"),
     ("maxAttempts", 1.5, "whole number"), ("env", {"A": 1}, "string value"),
     ("readyTimeout", -1, "seconds"), ("query", "gpu_ram => 20", "'=>'"),
     ("order", "  ", "vast-gpu:order")],
)
def test_bad_inputs_name_key_and_value(key: str, value: object, fragment: str) -> None:
    [(bad_key, reason)] = validate_inputs({**BASE, key: value})
    assert bad_key == key
    assert fragment in reason


def test_unknown_values_are_not_judged_during_preview() -> None:
    assert validate_inputs({**BASE, "disk": UNKNOWN, "query": UNKNOWN}) == []


def test_good_inputs_pass() -> None:
    assert validate_inputs(BASE) == []


def test_labels_find_our_instances_and_only_ours() -> None:
    tag = resource_tag("vast-gpu", "exp1", "gpu")
    assert tag == "vast-gpu:vast-gpu/exp1/gpu"
    assert carries_tag(full_label(tag, None), tag)
    assert carries_tag(full_label(tag, "my run"), tag)
    assert not carries_tag(full_label(resource_tag("vast-gpu", "exp1", "gpu2"), None), tag)
    assert not carries_tag("someone else's", tag)
    assert not carries_tag(None, tag)


def test_ssh_endpoint_prefers_direct_port_then_proxy() -> None:
    direct = {"public_ipaddr": " 1.2.3.4\n", "ports": {"22/tcp": [{"HostPort": "40022"}]},
              "ssh_host": "ssh4.vast.ai", "ssh_port": 11610}
    assert (ssh_endpoint(direct).host, ssh_endpoint(direct).port) == ("1.2.3.4", 40022)
    proxy = {"public_ipaddr": "1.2.3.4", "ssh_host": "ssh4.vast.ai", "ssh_port": 11610}
    assert (ssh_endpoint(proxy).host, ssh_endpoint(proxy).port) == ("ssh4.vast.ai", 11610)
    assert ssh_endpoint({"actual_status": "loading"}) is None


def test_provider_pickles_without_any_run_time_fact() -> None:
    provider = VastInstanceProvider()
    provider._stack_url = "http://sekret-host-123:1"
    blob = pickle.dumps(provider)
    assert b"sekret-host-123" not in blob
    assert pickle.loads(blob)._stack_url is None
