"""Derive vastsim's offer catalogue (``vastsim/data/offers.json``) from recorded real offers.

The source is ``/work/shared/data/vast-recorded/search-offers.json``: 1,396 real offers from
one ``search offers`` call that the official vast.ai CLI repository recorded in November 2024.
The sample keeps every field of every chosen offer untouched. It is chosen with a fixed seed,
so regenerating gives the same file:

* every offer is split into "good" ones (those that match ``reliability > 0.98 gpu_ram >= 20000
  compute_cap >= 700 inet_down >= 200 disk_space >= 50 verified rentable``, the query the
  project's demo uses) and the rest;
* ``GOOD_COUNT`` good ones and ``OTHER_COUNT`` others are drawn with ``random.Random(SEED)``;
* the result is sorted by offer id and written one offer per line, so diffs stay readable.

Regenerate with ``python -m vastsim.offer_sample [SOURCE] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

SEED = 20241128
GOOD_COUNT = 150
OTHER_COUNT = 200
DEFAULT_SOURCE = Path("/work/shared/data/vast-recorded/search-offers.json")
DEFAULT_OUT = Path(__file__).with_name("data") / "offers.json"


def is_good(offer: dict[str, Any]) -> bool:
    """True for offers the demo query would match (its numbers, on the recorded units)."""
    return (
        offer["reliability"] > 0.98
        and offer["gpu_ram"] >= 20000
        and offer["compute_cap"] >= 700
        and offer["inet_down"] >= 200
        and offer["disk_space"] >= 50
        and offer["verification"] == "verified"
        and offer["rentable"] is True
    )


def sample(offers: list[dict[str, Any]], seed: int = SEED) -> list[dict[str, Any]]:
    """Pick the deterministic sample: GOOD_COUNT good offers plus OTHER_COUNT others."""
    rng = random.Random(seed)
    good = sorted((o for o in offers if is_good(o)), key=lambda o: o["id"])
    other = sorted((o for o in offers if not is_good(o)), key=lambda o: o["id"])
    chosen = rng.sample(good, min(GOOD_COUNT, len(good)))
    chosen += rng.sample(other, min(OTHER_COUNT, len(other)))
    return sorted(chosen, key=lambda o: o["id"])


def write(offers: list[dict[str, Any]], out: Path) -> None:
    """Write ``{"offers": [...]}`` with one offer per line."""
    lines = ",\n".join(json.dumps(o, sort_keys=True) for o in offers)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('{"offers": [\n' + lines + "\n]}\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE,
                        help=f"recorded search answer (default {DEFAULT_SOURCE})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where to write the sample (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    offers = json.loads(args.source.read_text(encoding="utf-8"))["offers"]
    chosen = sample(offers)
    write(chosen, args.out)
    good = sum(1 for o in chosen if is_good(o))
    print(f"wrote {len(chosen)} offers ({good} match the demo query) to {args.out}")


if __name__ == "__main__":
    main()
