"""GET /api/v1/instances/ as vastai 1.9.1 uses it, on accounts with foreign instances seeded."""

from __future__ import annotations

import time

import pytest
import requests

from tests.vastsim.helpers import Api
from vastsim.testing import VastSim


def _ids(answer: dict) -> list[int]:
    return [r["id"] for r in answer["instances"]]


def test_pages_of_25_follow_next_token_to_the_last_page(vastsim: VastSim, api: Api):
    seeded = vastsim.seed(30)
    assert len(seeded) == 30
    first = api.list(select_filters={}, order_by=[{"col": "id", "dir": "asc"}], limit=25)
    assert first["success"] is True and first["instances_found"] == 25
    assert first["total_instances"] == 30 and isinstance(first["next_token"], str)
    second = api.list(limit=25, after_token=first["next_token"])
    assert second["instances_found"] == 5 and second["next_token"] is None
    assert _ids(first) + _ids(second) == sorted(seeded)


def test_the_cli_s_own_pager_sees_every_instance(vastsim: VastSim):
    seeded = vastsim.seed(27)
    assert [r["id"] for r in vastsim.instances()] == sorted(seeded)


@pytest.mark.parametrize(("limit", "rows"), [(100, 25), (3, 3), (0, 5), (-1, 5)])
def test_limit_is_clamped(vastsim: VastSim, api: Api, limit, rows):
    vastsim.seed(30)
    assert api.list(limit=limit)["instances_found"] == rows


def test_no_limit_means_25(vastsim: VastSim, api: Api):
    vastsim.seed(26)
    assert api.list()["instances_found"] == 25


def test_filters_by_label_status_and_null_label(vastsim: VastSim, api: Api):
    running = vastsim.seed(3, label="nb")
    stopped = vastsim.seed(2, status="stopped", label="old")
    unlabeled = vastsim.seed(1, label="")  # the empty label
    api.call("PUT", f"/api/v0/instances/{unlabeled[0]}/", {"label": None})
    assert _ids(api.list(select_filters={"label": {"eq": "nb"}})) == running
    assert _ids(api.list(select_filters={"label": "old"})) == stopped  # a bare value is eq
    assert _ids(api.list(select_filters={"label": {"in": [None]}})) == unlabeled
    assert _ids(api.list(select_filters={"actual_status": {"in": ["stopped", "exited"]}})) == \
        stopped
    both = api.list(select_filters={"label": {"in": ["nb", "old"]},
                                    "actual_status": {"neq": "stopped"}})
    assert _ids(both) == running and both["total_instances"] == 3
    assert _ids(api.list(select_filters={"id": {"gte": stopped[0], "lt": unlabeled[0]}})) == \
        stopped
    assert _ids(api.list(select_filters={"label": {"notin": ["nb", None]}})) == stopped
    assert api.list()["label_counts"] == {"nb": 3, "old": 2, "": 1}


def test_order_by_desc_and_the_id_tiebreak(vastsim: VastSim, api: Api):
    a = vastsim.seed(2, label="a")
    b = vastsim.seed(2, label="b")
    answer = api.list(order_by=[{"col": "label", "dir": "desc"}])
    assert _ids(answer) == b + a  # label desc, then id asc within a label
    pages = api.list(order_by=[{"col": "label", "dir": "desc"}], limit=3)
    rest = api.list(order_by=[{"col": "label", "dir": "desc"}], limit=3,
                    after_token=pages["next_token"])
    assert _ids(pages) + _ids(rest) == b + a and rest["next_token"] is None


def test_a_page_boundary_survives_a_destroy(vastsim: VastSim, api: Api):
    seeded = vastsim.seed(5)
    first = api.list(limit=2)
    assert _ids(first) == seeded[:2]
    assert api.call("DELETE", f"/api/v0/instances/{seeded[1]}/").status_code == 200
    assert api.call("DELETE", f"/api/v0/instances/{seeded[2]}/").status_code == 200
    second = api.list(limit=2, after_token=first["next_token"])
    assert _ids(second) == seeded[3:5] and second["next_token"] is None


def test_select_cols(vastsim: VastSim, api: Api):
    [one] = vastsim.seed(1, label="x")
    answer = api.list(select_cols=["id", "label", "no_such_col"])
    assert answer["instances"] == [{"id": one, "label": "x", "no_such_col": None}]
    assert len(api.list(select_cols=["*"])["instances"][0]) > 50


@pytest.mark.parametrize(("params", "error", "text"), [
    ({"select_filters": "{not json"}, "invalid_args", "select_filters"),
    ({"select_filters": "[1]"}, "invalid_args", "select_filters"),
    ({"select_filters": '{"dph_total": {"lt": 1}}'}, "invalid_args",
     "dph_total is not a valid search key"),
    ({"select_filters": '{"nope": {"eq": 1}}'}, "invalid_args", "nope is not a valid search key"),
    ({"select_filters": '{"label": {"like": "x"}}'}, "invalid_args", "like"),
    ({"order_by": '[{"col": "id", "dir": "up"}]'}, "invalid_args", "order_by"),
    ({"order_by": '{"col": "id"}'}, "invalid_args", "order_by"),
    ({"limit": "many"}, "invalid_args", "limit"),
    ({"after_token": "garbage!"}, "invalid_token", "after_token"),
])
def test_bad_args_are_400(api: Api, params, error, text):
    r = api.call("GET", "/api/v1/instances/", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["success"] is False and r.json()["error"] == error
    assert text in r.json()["msg"]


def test_a_token_for_another_order_is_refused(vastsim: VastSim, api: Api):
    vastsim.seed(3)
    token = api.list(limit=1, order_by=[{"col": "label", "dir": "asc"}])["next_token"]
    r = api.call("GET", "/api/v1/instances/", params={"after_token": token})
    assert r.status_code == 400 and r.json()["error"] == "invalid_token"


def test_seeded_instances_are_foreign_and_bill(vastsim: VastSim, api: Api):
    ids = vastsim.seed(8)
    rows = vastsim.instances()
    assert not any("vast-gpu:" in (r["label"] or "") for r in rows)
    assert None in {r["label"] for r in rows}  # some carry no label at all
    assert {r["actual_status"] for r in rows} == {"running"}
    assert all(r["start_date"] < time.time() - 3600 for r in rows)  # started a while ago
    assert set(vastsim.billing_now()) == set(ids)
    internals = {i["id"]: i for i in vastsim.internals()}
    assert all(internals[i]["pid"] is None for i in ids)  # no sshd behind them
    logs = api.call("PUT", f"/api/v0/instances/request_logs/{ids[0]}/", {"tail": "5"})
    assert logs.status_code == 200 and logs.json()["result_url"]
    api.call("PUT", f"/api/v0/instances/{ids[1]}/", {"state": "stopped"})
    api.call("PUT", f"/api/v0/instances/{ids[1]}/", {"state": "running"})
    assert api.wait_status(ids[1], "running")["intended_status"] == "running"


def test_seeded_instances_survive_a_restart(vastsim: VastSim):
    ids = vastsim.seed(3)
    vastsim.restart()
    assert [r["actual_status"] for r in vastsim.instances()] == ["running"] * 3
    assert set(vastsim.billing_now()) == set(ids)


@pytest.mark.parametrize("spec", [{"count": 0}, {"count": "3"}, {"count": 2, "status": "x"},
                                  {"count": 1, "label": 5}])
def test_seed_refuses_bad_specs(vastsim: VastSim, spec):
    r = requests.post(vastsim.url + "/_sim/seed", json=spec, timeout=10)
    assert r.status_code == 400 and "error" in r.json()


def test_filters_route_lists_the_combinations_present(vastsim: VastSim, api: Api):
    vastsim.seed(2)
    vastsim.seed(1, status="stopped")
    r = api.call("GET", "/api/v0/instances/filters/")
    assert r.status_code == 200 and r.json()["success"] is True
    statuses = {f["actual_status"] for f in r.json()["filters"]}
    assert statuses == {"running", "stopped"}
    assert all(set(f) == {"actual_status", "verification", "gpu_name"} and f["gpu_name"]
               for f in r.json()["filters"])
