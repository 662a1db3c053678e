"""Command line: ``python -m vastsim serve [...]`` (see ``--help``)."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from pathlib import Path

from vastsim.accounts import parse_date
from vastsim.errors import VastSimError
from vastsim.faults import FaultSpecError
from vastsim.server import DEFAULT_BOOT_SECONDS, DEFAULT_PORT, DEFAULT_STATE_DIR, serve
from vastsim.sshhost import SshHostError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m vastsim",
                                  description="A local vast.ai: the same REST API, each rented "
                                              "instance a real OpenSSH sshd.")
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the API until Ctrl-C / SIGTERM",
                       description="Serve the vast.ai REST API on 127.0.0.1. Prints "
                                   "VAST_URL=... and VAST_API_KEY=... as its first two lines.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"TCP port on 127.0.0.1; 0 picks a free one (default {DEFAULT_PORT})")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help="where instances, keys, offers taken and the ledger are kept; reuse it "
                        f"to restart with the same instances (default {DEFAULT_STATE_DIR})")
    p.add_argument("--boot-seconds", type=float, default=DEFAULT_BOOT_SECONDS,
                   help="seconds from rent (or start/reboot) to running: a quarter in "
                        "scheduling, the rest in loading; 0 = running when the rent answers "
                        f"(default {DEFAULT_BOOT_SECONDS:g})")
    p.add_argument("--faults", type=Path, metavar="FILE",
                   help="JSON file of faults to inject (a list of fault objects, or "
                        '{"faults": [...]}), added to the pending ones at every start; see '
                        "vastsim/faults.py for the kinds")
    p.add_argument("--api-key",
                   help="the account API key; default: the one in the state dir, or a new "
                        "random one")
    p.add_argument("--account-created", metavar="YYYY-MM-DD", type=_date,
                   help="when the account was opened: on or before 2026-06-02 the old "
                        "GET /api/v0/instances/ list still answers; later it is 410 "
                        "deprecated_endpoint, as on vast.ai (default: a new account, or the "
                        "date kept in the state dir)")
    p.add_argument("--log-level", default="WARNING",
                   help="Python logging level on stderr (default WARNING)")
    return top


def _date(text: str) -> datetime.date:
    try:
        return parse_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    faults = None
    if args.faults is not None:
        try:
            faults = json.loads(args.faults.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"vastsim: cannot read --faults {args.faults}: {exc}", file=sys.stderr)
            return 2
    try:
        serve(port=args.port, state_dir=args.state_dir, boot_seconds=args.boot_seconds,
              faults=faults, api_key=args.api_key, account_created=args.account_created)
    except (VastSimError, FaultSpecError, SshHostError) as exc:
        print(f"vastsim: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
