"""Every vast.ai endpoint vastsim serves, over raw HTTP: shapes, auth, validation, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.vastsim.helpers import DEMO_QUERY, Api
from vastsim.catalogue import storage_hourly
from vastsim.instance import TEMPLATE_FILE

AUTH_ERROR = {"success": False, "error": "auth_error", "msg": "Invalid user key"}


def test_auth_by_header_or_query_and_the_401_shape(api: Api):
    assert api.call("GET", "/api/v1/instances/").status_code == 200
    r = api.call("GET", "/api/v1/instances/", key="", params={"api_key": api.key})
    assert r.status_code == 200
    for key in ("", "wrong"):
        r = api.call("GET", "/api/v1/instances/", key=key)
        assert r.status_code == 401 and r.json() == AUTH_ERROR


DEPRECATED = {"success": False, "error": "deprecated_endpoint",
              "msg": "Endpoint deprecated: /api/v0/instances/ is deprecated. "
                     "Use /api/v1/instances/ instead."}
V0_LIST_PATHS = ("/api/v0/instances", "/api/v0/instances/", "/api/v0/instances/?owner=me",
                 "/api/v0/instances?owner=me")


def test_v0_list_is_410_for_a_new_account(api: Api):
    api.rent()
    for path in V0_LIST_PATHS:
        r = api.call("GET", path)
        assert r.status_code == 410 and r.json() == DEPRECATED, path
    assert api.call("GET", "/api/v0/instances/", key="wrong").status_code == 401  # auth first


def test_v0_list_answers_an_account_opened_before_june_2026(vastsim_factory):
    api = Api(vastsim_factory(account_created="2025-01-01"))
    for path in V0_LIST_PATHS:
        r = api.call("GET", path)
        assert r.status_code == 200 and r.json() == {"instances_found": 0, "instances": []}
    first = api.rent()
    assert [i["id"] for i in api.call("GET", "/api/v0/instances/").json()["instances"]] == \
        [first]
    on_the_day = Api(vastsim_factory(account_created="2026-06-02"))
    assert on_the_day.call("GET", "/api/v0/instances/").status_code == 200
    day_after = Api(vastsim_factory(account_created="2026-06-03"))
    assert day_after.call("GET", "/api/v0/instances/").status_code == 410


def test_account_date_is_kept_in_the_state_dir(vastsim_factory):
    sim = vastsim_factory(account_created="2025-01-01")
    sim.account_created = None  # the restart gives no flag: the stored date holds
    sim.restart()
    assert Api(sim).call("GET", "/api/v0/instances/").status_code == 200


def test_trailing_slash_and_owner_me(api: Api):
    instance_id = api.rent()
    for path in ("/api/v1/instances", "/api/v1/instances/?owner=me"):
        r = api.call("GET", path)
        assert r.status_code == 200 and [i["id"] for i in r.json()["instances"]] == [instance_id]
    for path in (f"/api/v0/instances/{instance_id}", f"/api/v0/instances/{instance_id}/",
                 f"/api/v0/instances/{instance_id}/?owner=me"):
        r = api.call("GET", path)
        assert r.status_code == 200 and r.json()["instances"]["id"] == instance_id, path


def test_users_current_and_its_extra_params_rule(api: Api):
    me = api.call("GET", "/api/v0/users/current")
    assert me.status_code == 200
    assert me.json()["api_key"] == api.key and me.json()["credit"] == 100.0
    extra = api.call("GET", "/api/v0/users/current/", params={"owner": "me"})
    assert extra.status_code == 400 and "owner: Extra inputs are not permitted" in extra.text


def test_gpu_names_without_a_key(api: Api):
    r = api.call("GET", "/api/v0/gpu_names/unique/", key="")
    names = r.json()["gpu_names"]
    assert r.status_code == 200 and "RTX 4090" in names and names == sorted(set(names))
    assert {o["gpu_name"] for o in api.search({"limit": 1000})} <= set(names)


def test_unknown_routes_are_404_and_recorded(vastsim, api: Api):
    assert api.call("GET", "/api/v0/nothing/here/").status_code == 404
    assert api.call("PATCH", "/api/v0/instances/1/").status_code == 404
    seen = [(u["method"], u["path"]) for u in vastsim.unexpected()]
    assert seen == [("GET", "/api/v0/nothing/here/"), ("PATCH", "/api/v0/instances/1/")]


def test_rent_answer_and_instance_record(api: Api):
    offer = api.search({**DEMO_QUERY, "limit": 1})[0]
    body = {"client_id": "me", "image": "pytorch/pytorch", "disk": 40.0, "label": "run-1",
            "onstart": "echo hi", "runtype": "ssh_direc ssh_proxy", "price": None,
            "env": {"TZ": "UTC", "-p 8080:8080": "1"}, "extra": None, "image_login": None,
            "python_utf8": False, "lang_utf8": False, "use_jupyter_lab": False,
            "jupyter_dir": None, "force": False, "cancel_unavail": False,
            "template_hash_id": None, "user": None}
    r = api.call("PUT", f"/api/v0/asks/{offer['id']}/", body)
    assert r.status_code == 200
    answer = r.json()
    assert set(answer) == {"success", "new_contract", "instance_api_key"}
    assert answer["success"] is True
    inst = api.show(answer["new_contract"])
    template = json.loads(TEMPLATE_FILE.read_text())
    assert set(template) <= set(inst)
    assert inst["actual_status"] == "running" and inst["intended_status"] == "running"
    assert inst["extra_env"] == [["TZ", "UTC"], ["-p 8080:8080", "1"]]
    assert inst["label"] == "run-1" and inst["onstart"] == "echo hi"
    assert inst["image_uuid"] == "pytorch/pytorch" and inst["disk_space"] == 40.0
    assert inst["machine_id"] == offer["machine_id"] and inst["gpu_name"] == offer["gpu_name"]
    assert inst["num_gpus"] == offer["num_gpus"] and inst["ssh_host"] == "127.0.0.1"
    disk = storage_hourly(40.0, offer["storage_cost"])
    assert inst["dph_total"] == offer["dph_base"] + disk
    assert inst["instance"]["gpuCostPerHour"] == offer["dph_base"]
    assert inst["ports"]["22/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(inst["ssh_port"])}]
    assert isinstance(inst["start_date"], float) and inst["is_bid"] is False


def test_proxy_runtype_has_no_ports(api: Api):
    inst = api.show(api.rent(runtype="ssh"))
    assert inst["actual_status"] == "running" and "ports" not in inst
    assert inst["ssh_port"] > 0


@pytest.mark.parametrize(("body", "status", "error", "text"), [
    ({"image": "x", "env": "-e A=1"}, 400, "invalid_args", "invalid env type: env must be a dict"),
    ({"disk": 10}, 400, "invalid_args", "image"),
    ({"image": "x", "disk": 4}, 400, "invalid_args", "disk"),
    ({"image": "x", "label": "l" * 1025}, 400, "label_too_long", "1024"),
    ({"image": "x", "price": 500}, 400, "invalid_price", "bid"),
    ({"image": "x", "disk": 1e9}, 400, "invalid_args", "exceeds"),
])
def test_rent_validation(api: Api, body, status, error, text):
    offer_id = api.search(DEMO_QUERY)[0]["id"]
    r = api.call("PUT", f"/api/v0/asks/{offer_id}/", body)
    assert r.status_code == status
    assert r.json()["success"] is False and r.json()["error"] == error and text in r.json()["msg"]
    assert api.list()["total_instances"] == 0


def test_rent_unknown_offer(api: Api):
    r = api.call("PUT", "/api/v0/asks/1/", {"image": "x"})
    assert r.status_code == 404 and "no_such_ask" in r.json()["msg"] and r.json()["ask_id"] == 1


def test_bid_makes_an_interruptible_instance(api: Api):
    inst = api.show(api.rent(price=0.5))
    assert inst["is_bid"] is True and inst["dph_base"] == 0.5


def test_list_label_stop_start_destroy(api: Api):
    first, second = api.rent(), api.rent()
    listed = api.list()
    assert listed["instances_found"] == 2
    assert [i["id"] for i in listed["instances"]] == [first, second]
    r = api.call("PUT", f"/api/v0/instances/{first}/", {"label": "renamed"})
    assert r.status_code == 200 and r.json()["success"] is True
    assert api.show(first)["label"] == "renamed"
    assert api.call("PUT", f"/api/v0/instances/{first}/", {"state": "stopped"}).json() == \
        {"success": True}
    stopped = api.show(first)
    assert (stopped["actual_status"], stopped["intended_status"], stopped["cur_state"]) == \
        ("stopped", "stopped", "stopped")
    assert "ports" not in stopped and stopped["instance"]["gpuCostPerHour"] == 0
    api.call("PUT", f"/api/v0/instances/{first}/", {"state": "running"})
    assert api.wait_status(first, "running")["ports"]
    bad = api.call("PUT", f"/api/v0/instances/{first}/", {"state": "paused"})
    assert bad.status_code == 400
    assert api.call("DELETE", f"/api/v0/instances/{first}/", {}).json() == {"success": True}
    assert api.show(first) is None
    assert [i["id"] for i in api.list()["instances"]] == [second]


def test_unknown_instance_answers(api: Api):
    gone = {"success": False, "error": "no_such_instance", "msg": "Instance 99 not found."}
    assert api.show(99) is None
    assert api.call("DELETE", "/api/v0/instances/99/").status_code == 404
    assert api.call("DELETE", "/api/v0/instances/99/").json() == gone
    assert api.call("PUT", "/api/v0/instances/99/", {"label": "x"}).json() == gone
    assert api.call("PUT", "/api/v0/instances/reboot/99/").status_code == 400


def test_destroy_twice(api: Api):
    instance_id = api.rent()
    assert api.call("DELETE", f"/api/v0/instances/{instance_id}/").status_code == 200
    assert api.call("DELETE", f"/api/v0/instances/{instance_id}/").status_code == 404


def test_reboot_comes_back_running(api: Api):
    instance_id = api.rent()
    r = api.call("PUT", f"/api/v0/instances/reboot/{instance_id}/", {})
    assert r.json() == {"success": True}
    assert api.wait_status(instance_id, "running")["ports"]


def test_account_ssh_keys(api: Api):
    assert api.call("GET", "/api/v0/ssh/").json() == []
    created = api.call("POST", "/api/v0/ssh/", {"ssh_key": "ssh-ed25519 AAAA1 a@b"}).json()
    assert created["success"] is True and created["key"]["public_key"] == "ssh-ed25519 AAAA1 a@b"
    key_id = created["key"]["id"]
    assert api.call("POST", "/api/v0/ssh/", {"ssh_key": "ssh-ed25519 AAAA1 a@b"}).status_code \
        == 400
    assert api.call("POST", "/api/v0/ssh/", {}).json()["error"] == "no_ssh_key"
    updated = api.call("PUT", f"/api/v0/ssh/{key_id}/", {"id": key_id,
                                                         "ssh_key": "ssh-ed25519 AAAA2"})
    assert updated.json()["key"]["public_key"] == "ssh-ed25519 AAAA2"
    assert api.call("GET", "/api/v0/users/current/").json()["ssh_key"] == "ssh-ed25519 AAAA2\n"
    assert api.call("DELETE", f"/api/v0/ssh/{key_id}/").json() == {"success": True}
    assert api.call("GET", "/api/v0/ssh").json() == []  # only keys not deleted (issue 9)
    assert api.call("DELETE", f"/api/v0/ssh/{key_id}/").status_code == 404


def test_attach_key(api: Api, vastsim):
    instance_id = api.rent()
    r = api.call("POST", f"/api/v0/instances/{instance_id}/ssh/", {"ssh_key": "ssh-ed25519 K"})
    assert r.json() == {"success": True, "msg": "SSH key attached successfully"}
    root = next(i["root"] for i in vastsim.internals() if i["id"] == instance_id)
    assert "ssh-ed25519 K" in (Path(root) / "ssh" / "authorized_keys").read_text()
    assert api.call("POST", "/api/v0/instances/99/ssh/", {"ssh_key": "x"}).status_code == 404


def test_container_api_key_scope(api: Api):
    mine, other = api.rent(), api.rent()
    container_key = api.instance_keys[mine]
    assert api.show(mine, key=container_key)["id"] == mine
    assert api.show(other, key=container_key) is None  # not visible to that key
    assert api.call("DELETE", f"/api/v0/instances/{other}/", key=container_key).status_code == 403
    offer_id = api.search(DEMO_QUERY)[0]["id"]
    for method, path in (("GET", "/api/v1/instances/"), ("GET", "/api/v0/users/current/"),
                         ("PUT", f"/api/v0/asks/{offer_id}/"), ("GET", "/api/v0/ssh/"),
                         ("PUT", f"/api/v0/instances/reboot/{mine}/")):
        r = api.call(method, path, {"image": "x"}, key=container_key)
        assert r.status_code == 401 and r.json() == AUTH_ERROR, path
    r = api.call("PUT", f"/api/v0/instances/{mine}/", {"state": "stopped"}, key=container_key)
    assert r.status_code == 200 and api.show(mine)["actual_status"] == "stopped"
    assert api.call("DELETE", f"/api/v0/instances/{mine}/", key=container_key).status_code == 200
    assert api.show(mine) is None
    assert api.show(other)["actual_status"] == "running"
    after = api.call("GET", f"/api/v0/instances/{mine}/", key=container_key)
    assert after.status_code == 401 and after.json() == AUTH_ERROR  # a destroyed one's key is dead


def test_logs_are_a_result_url_outside_the_api_404_until_uploaded(api: Api, vastsim):
    mine, other = api.rent(onstart="echo one; echo two; echo three"), api.rent()
    api.wait_status(mine, "running")
    answer = api.call("PUT", f"/api/v0/instances/request_logs/{mine}/", {"tail": "2"}).json()
    assert answer["success"] is True
    url = answer["result_url"]
    assert url.startswith(vastsim.url + "/_s3/instance_logs/") and url.endswith(".log")
    assert api.key not in url
    first = requests.get(url, timeout=5)  # no key: the store is outside the API
    assert first.status_code == 404
    deadline = time.monotonic() + 10
    while (r := requests.get(url, timeout=5)).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.status_code == 200 and r.text == "two\nthree\n"
    container_key = api.instance_keys[mine]
    own = api.call("PUT", f"/api/v0/instances/request_logs/{mine}/", {}, key=container_key)
    assert own.status_code == 200
    foreign = api.call("PUT", f"/api/v0/instances/request_logs/{other}/", {}, key=container_key)
    assert foreign.status_code == 403
    assert api.call("PUT", "/api/v0/instances/request_logs/99/", {}).status_code == 404
    assert requests.get(vastsim.url + "/_s3/instance_logs/guess.log", timeout=5).status_code \
        == 404
