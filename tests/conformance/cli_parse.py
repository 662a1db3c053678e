"""Run inside .venv-referee: the official CLI's own parsers on queries read as JSON from stdin.

Input: {"queries": [...], "orders": [...]}; output: the same lists parsed, each entry either
the CLI's JSON or {"error": "<exception>"}. The base query is what `vastai search offers` starts
from (vastai/cli/commands/offers.py: search__offers).
"""

import copy
import json
import sys

from vastai.api.query import offers_alias, offers_fields, offers_mult, parse_order, parse_query

BASE = {"verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True}}


def _safely(fn, arg):
    try:
        return fn(arg)
    except BaseException as exc:  # the CLI exits or raises on bad input: report, go on
        return {"error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    spec = json.load(sys.stdin)
    out = sys.stdout
    sys.stdout = sys.stderr  # the CLI prints its warnings ("Unrecognized field") to stdout
    queries = [_safely(lambda q: parse_query(q, copy.deepcopy(BASE), offers_fields,
                                             offers_alias, offers_mult), q)
               for q in spec.get("queries", [])]
    orders = [_safely(parse_order, o) for o in spec.get("orders", [])]
    json.dump({"queries": queries, "orders": orders}, out)


if __name__ == "__main__":
    main()
