"""Why an instance cannot run although it is meant to: outbid, or its machine's GPUs are busy.

vast.ai facts (vast-api.md "Rent", "Billing"): a bid (``price``) under the offer's ``min_bid``
creates the instance anyway, and it waits in ``scheduling`` while its storage bills. A running
bid instance that a higher bid pushes off its machine is paused: ``actual_status: stopped``
while ``intended_status`` stays ``running``, storage still billing, SSH gone; it resumes when
its bid is the highest again (``PUT /instances/bid_price/{id}/`` raises it). A rent on a machine
whose GPUs are busy creates a ``stopped`` instance that bills storage, "Required resources are
currently unavailable, state change queued.", unless the body says ``cancel_unavail: true``:
then the rent is refused. The server's default for a missing ``cancel_unavail`` is true for an
on-demand rent and false for a bid (vast.ai's create-instance docs).

``PUT /api/v0/instances/bid_price/{id}/`` ``{"client_id": "me", "price": P}`` changes the bid
(400 "Please set a bid price >= 0.001.", 404 "Instance with that ID does not exist.", both from
vast-api.md): at or over ``min_bid`` an outbid instance starts again; a running one whose new
bid is under it is outbid at once. The GPU rate changes from that second on (ledger.py).

Our choices where vast.ai documents no exact shape: the refusal is 410 ``no_such_ask`` (what a
taken offer answers, so clients treat it as one) with a message naming the busy machine; the
``status_msg`` texts of an outbid instance are ours; ``cur_state`` reads ``stopped`` while an
instance waits; changing the bid of an on-demand instance is a 400; a start (``PUT {"state":
"running"}``) of a waiting instance answers ``{"success": true}`` and stays queued.
``Instance.waiting`` holds the reason (``outbid`` | ``unavailable``); a waiting instance never
leaves its phase by itself.
"""

from __future__ import annotations

from typing import Any

from vastsim.errors import ApiError
from vastsim.instance import Instance

OUTBID = "outbid"
UNAVAILABLE = "unavailable"
UNAVAILABLE_MSG = "Required resources are currently unavailable, state change queued.\n"


def below_min_bid_msg(price: float, min_bid: float) -> str:
    return (f"Outbid: your bid ${price:g}/h is under this machine's minimum bid "
            f"${min_bid:g}/h; waiting for the price to fall or your bid to rise.\n")


def outbid_msg(price: float) -> str:
    return (f"Outbid: a higher bid took this machine; your bid ${price:g}/h resumes it "
            "when it is the highest again.\n")


def waiting_msg(inst: Instance) -> str:
    if inst.waiting == UNAVAILABLE:
        return UNAVAILABLE_MSG
    price, floor = inst.price or 0.0, min_bid(inst.offer)
    return below_min_bid_msg(price, floor) if price < floor else outbid_msg(price)


def busy_refusal(offer_id: int, machine_id: Any) -> ApiError:
    """cancel_unavail: true on a busy machine (410 like a taken offer; the text is ours)."""
    return ApiError.vast(410, "no_such_ask",
                         f"error 410/3907: no_such_ask Instance type {offer_id} is no longer "
                         f"available: the GPUs of machine {machine_id} are busy and "
                         "cancel_unavail is set.", ask_id=offer_id)


def cancel_unavail(body: dict[str, Any]) -> bool:
    """The rent's cancel_unavail, or the server default (true on demand, false for a bid)."""
    value = body.get("cancel_unavail")
    if value is None:
        return body.get("price") is None
    return bool(value)


def min_bid(offer: dict[str, Any]) -> float:
    return float(offer.get("min_bid") or 0.0)


def hold_at_rent(inst: Instance, *, machine_busy: bool) -> tuple[str, str] | None:
    """(phase, status_msg) a new instance waits in, or None when it may boot."""
    if machine_busy:
        inst.waiting = UNAVAILABLE
        return "stopped", UNAVAILABLE_MSG
    if inst.price is not None and inst.price < min_bid(inst.offer):
        inst.waiting = OUTBID
        return "scheduling", below_min_bid_msg(inst.price, min_bid(inst.offer))
    return None


def can_outbid(inst: Instance) -> bool:
    """A live bid instance that holds (or is about to hold) its machine's GPUs."""
    return (inst.price is not None and not inst.gone and inst.waiting is None
            and inst.intended == "running"
            and inst.phase in ("scheduling", "loading", "running", "rebooting"))


def check_bid(price: Any) -> float:
    if isinstance(price, bool) or not isinstance(price, int | float) or price < 0.001:
        raise ApiError.vast(400, "invalid_args", "Please set a bid price >= 0.001.")
    return float(price)
