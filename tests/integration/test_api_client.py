"""VastClient over real HTTP against vastsim: endpoints, error mapping, retries, key hygiene."""

from __future__ import annotations

import logging

import pytest

from providers.api import RetryPolicy, VastClient, error_for
from providers.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    OfferGoneError,
    QuotaExceededError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from providers.query import build_search
from providers.settings import DEFAULT_QUERY
from vastsim.testing import VastSim

FAST = RetryPolicy(attempts=4, first_delay_s=0.01, max_delay_s=0.02)
RENT = {"client_id": "me", "image": "img", "env": {}, "disk": 20.0, "label": "vast-gpu:t/t/x",
        "runtype": "ssh_direc ssh_proxy", "price": None, "onstart": None}


def client(sim: VastSim, key: str | None = None) -> VastClient:
    return VastClient(sim.url, key or sim.api_key, retry=FAST)


def first_offer(c: VastClient) -> dict:
    return c.search_offers(build_search(DEFAULT_QUERY, "dph+", disk_gb=20))[0]


def test_search_rent_show_label_destroy(vastsim: VastSim) -> None:
    c = client(vastsim)
    offers = c.search_offers(build_search(DEFAULT_QUERY, "dph+", disk_gb=20))
    assert offers and all(o["gpu_ram"] >= 20000 for o in offers)
    prices = [o["dph_total"] for o in offers]
    assert prices == sorted(prices)
    iid = c.rent(offers[0]["id"], RENT)
    assert c.show_instance(iid)["label"] == "vast-gpu:t/t/x"
    assert [r["id"] for r in c.list_instances()] == [iid]
    c.set_label(iid, "renamed")
    assert c.show_instance(iid)["label"] == "renamed"
    assert c.destroy_instance(iid) is True
    assert c.show_instance(iid) is None
    assert c.destroy_instance(iid) is False  # already gone is success, said as False
    assert vastsim.billing_now() == []


def test_offer_rented_twice_is_offer_gone(vastsim: VastSim) -> None:
    c = client(vastsim)
    offer = first_offer(c)
    iid = c.rent(offer["id"], RENT)
    with pytest.raises(OfferGoneError) as err:
        c.rent(offer["id"], RENT)
    assert f"/api/v0/asks/{offer['id']}/" in str(err.value)
    c.destroy_instance(iid)


def test_bad_key_is_auth_error_without_the_key(vastsim: VastSim) -> None:
    with pytest.raises(AuthError) as err:
        client(vastsim, "wrong-key-abc").list_instances()
    assert err.value.status == 401 and err.value.error == "auth_error"
    assert "wrong-key-abc" not in str(err.value)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"success": False, "error": "auth_error", "msg": "Invalid user key"}, AuthError),
        (410, {"success": False, "error": "no_such_ask", "msg": "no longer available"},
         OfferGoneError),
        (400, {"error": "invalid_args", "msg": "no_such_ask Instance type 1 is not available."},
         OfferGoneError),
        (404, {"success": False, "error": "no_such_instance", "msg": "Instance 5 not found."},
         NotFoundError),
        (429, None, RateLimitedError),
        (503, None, ServerError),
        (400, {"error": "invalid_args", "msg": "bad"}, ApiError),
    ],
)
def test_error_bodies_map_to_one_tree(status: int, body: dict | None, expected: type) -> None:
    err = error_for("PUT", "/api/v0/asks/1/", status, body, "API requests too frequent")
    assert type(err) is expected


def test_rate_limit_and_5xx_are_retried_for_idempotent_calls(vastsim: VastSim) -> None:
    vastsim.add_faults({"kind": "rate_limit", "count": 2, "body": "both"},
                       {"kind": "server_error", "count": 1, "status": 504})
    c = client(vastsim)
    assert c.list_instances() == []
    assert c.calls == 4


def test_retries_give_up_with_the_last_error(vastsim: VastSim) -> None:
    vastsim.add_faults({"kind": "rate_limit", "count": 10})
    c = client(vastsim)
    with pytest.raises(RateLimitedError, match="HTTP 429"):
        c.list_instances()
    assert c.calls == FAST.attempts


def test_rent_is_never_retried_blindly(vastsim: VastSim) -> None:
    c = client(vastsim)
    offer = first_offer(c)
    vastsim.add_faults({"kind": "server_error", "count": 1, "status": 502, "after": True,
                        "method": "PUT", "path": "/asks/"})
    before = c.calls
    with pytest.raises(ServerError):
        c.rent(offer["id"], RENT)
    assert c.calls == before + 1
    [made] = c.list_instances()  # the rent did happen: only the answer was lost
    assert made["label"] == RENT["label"]
    c.destroy_instance(made["id"])


def test_no_answer_is_transport_error(vastsim: VastSim) -> None:
    dead = VastClient("http://127.0.0.1:9", "k", retry=FAST)
    with pytest.raises(TransportError) as err:
        dead.list_instances()
    assert err.value.status is None


def test_key_in_no_url_and_no_notice(vastsim: VastSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    vastsim.add_faults({"kind": "rate_limit", "count": 1})
    notices: list[str] = []
    c = VastClient(vastsim.url, vastsim.api_key, retry=FAST, notify=notices.append)
    c.list_instances()
    assert vastsim.api_key not in caplog.text + "".join(notices)
    assert any("GET /api/v1/instances/ -> HTTP 429" in n and "retry 1/" in n for n in notices)
    paths = [r["path"] for r in vastsim.admin_get("/_sim/requests")["requests"]]
    assert paths and all("api_key" not in p and vastsim.api_key not in p for p in paths)
    assert vastsim.api_key not in repr(c)


# -- vast.ai as it answers today: the v1 list, rate limits, the rent's retries, logs ---------

def foreign(sim: VastSim, n: int) -> list[int]:
    """n instances of someone else on the account (labels not ours), rented directly."""
    c = client(sim)
    offers = c.search_offers(build_search("num_gpus>=1", "dph+", disk_gb=10, limit=n + 5))
    return [c.rent(o["id"], {**RENT, "label": f"someone else's run {i}", "disk": 10.0})
            for i, o in enumerate(offers[:n])]


def test_the_list_pages_through_v1_to_the_last_token(vastsim: VastSim) -> None:
    made = foreign(vastsim, 30)
    c = client(vastsim)
    rows = c.list_instances()
    assert sorted(r["id"] for r in rows) == sorted(made)
    pages = [r for r in vastsim.admin_get("/_sim/requests")["requests"]
             if r["path"].startswith("/api/v1/instances")]
    assert len(pages) == 2 and "after_token=" in pages[1]["path"]
    assert not any(r["path"].startswith("/api/v0/instances/?") or r["path"] == "/api/v0/instances/"
                   for r in vastsim.admin_get("/_sim/requests")["requests"])
    assert c.calls == 2
    for iid in made:
        c.destroy_instance(iid)


def test_strings_are_stripped_as_the_cli_strips_them(vastsim: VastSim) -> None:
    c = client(vastsim)
    iid = c.rent(first_offer(c)["id"], {**RENT, "label": "  padded label \n"})
    assert c.show_instance(iid)["label"] == "padded label"
    assert [r["label"] for r in c.list_instances()] == ["padded label"]
    c.destroy_instance(iid)


def test_retry_after_is_honoured_and_capped(vastsim: VastSim) -> None:
    vastsim.add_faults({"kind": "rate_limit", "count": 2, "retry_after": 2})
    slept: list[float] = []
    c = VastClient(vastsim.url, vastsim.api_key, retry=FAST, sleep=slept.append)
    assert c.list_instances() == []
    assert slept == [2.0, 2.0]
    vastsim.add_faults({"kind": "rate_limit", "count": 1, "retry_after": 3600})
    slept.clear()
    c.list_instances()
    assert slept == [60.0]


def test_a_search_quota_429_is_not_retried_and_says_so(vastsim: VastSim) -> None:
    vastsim.add_faults({"kind": "rate_limit", "count": 5, "body": "quota"})
    c = client(vastsim)
    with pytest.raises(QuotaExceededError) as err:
        c.search_offers(build_search(DEFAULT_QUERY, "dph+", disk_gb=20))
    assert c.calls == 1
    assert "00:00 UTC" in str(err.value) and "search_quota_exceeded" in str(err.value)


def test_a_429_on_the_rent_is_retried_because_it_rented_nothing(vastsim: VastSim) -> None:
    c = client(vastsim)
    offer = first_offer(c)
    vastsim.add_faults({"kind": "rate_limit", "count": 2, "method": "PUT", "path": "/asks/"})
    iid = c.rent(offer["id"], RENT)
    assert [r["id"] for r in c.list_instances()] == [iid]  # one instance, not three
    c.destroy_instance(iid)


def test_a_rent_that_never_connected_is_retried_and_one_that_did_is_not(vastsim: VastSim):
    dead = VastClient("http://127.0.0.1:9", "k", retry=FAST)
    with pytest.raises(TransportError) as err:
        dead.rent(1, RENT)
    assert err.value.sent is False and dead.calls == FAST.attempts
    c = client(vastsim)
    offer = first_offer(c)
    vastsim.add_faults({"kind": "server_error", "count": 1, "status": 503, "method": "PUT",
                        "path": "/asks/"})
    with pytest.raises(ServerError):
        c.rent(offer["id"], RENT)
    assert c.calls == 2  # the search, and one rent: a 5xx may have rented


@pytest.mark.parametrize("body", ["not json at all", '{"instances": "nope"}', "",
                                  '{"instances": [{"label": "no id"}]}'])
def test_a_bad_list_answer_is_an_error_naming_the_endpoint_never_empty(
    vastsim: VastSim, body: str
) -> None:
    vastsim.add_faults({"kind": "bad_answer", "count": 1, "path": "/api/v1/instances",
                        "text": body})
    with pytest.raises(ApiError) as err:
        client(vastsim).list_instances()
    assert "GET /api/v1/instances/" in str(err.value)


def test_instance_logs_come_from_the_result_url_without_the_key(vastsim: VastSim) -> None:
    c = client(vastsim)
    iid = c.rent(first_offer(c)["id"], {**RENT, "onstart": "echo hello-from-onstart"})
    text = c.instance_logs(iid, tail=50)
    assert "hello-from-onstart" in text
    fetched = [r for r in vastsim.admin_get("/_sim/requests")["requests"]
               if "request_logs" in r["path"] or "/_logs/" in r["path"]]
    assert fetched and all(vastsim.api_key not in r["path"] for r in fetched)
    c.destroy_instance(iid)
