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


def test_key_in_no_url_and_no_log_line(vastsim: VastSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    vastsim.add_faults({"kind": "rate_limit", "count": 1})
    c = client(vastsim)
    c.list_instances()
    assert vastsim.api_key not in caplog.text
    assert "GET /api/v0/instances/" in caplog.text
    paths = [r["path"] for r in vastsim.admin_get("/_sim/requests")["requests"]]
    assert paths and all("api_key" not in p and vastsim.api_key not in p for p in paths)
    assert vastsim.api_key not in repr(c)
