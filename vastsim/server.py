"""Run vastsim: bind the API, re-boot surviving instances, serve until SIGINT/SIGTERM, clean up.

The first two lines on stdout are machine-readable and nothing is printed before them::

    VAST_URL=http://127.0.0.1:PORT
    VAST_API_KEY=<account key>

On SIGINT or SIGTERM every instance's sshd (and every process in its namespace) is stopped and
the state is saved; running instances come back, with the same host key, on the next start.
"""

from __future__ import annotations

import datetime
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from vastsim.api import make_server
from vastsim.cloud import Cloud
from vastsim.sshhost import check_tools

DEFAULT_PORT = 8765
DEFAULT_STATE_DIR = Path(".vastsim")
DEFAULT_BOOT_SECONDS = 5.0
"""How `python -m vastsim serve` and `inv sim` serve unless told otherwise."""

DEFAULT_HOST = "127.0.0.1"


def serve(*, port: int, state_dir: Path, boot_seconds: float, faults: Any = None,
          api_key: str | None = None, host: str = DEFAULT_HOST,
          account_created: datetime.date | None = None) -> None:
    """Serve until SIGINT or SIGTERM; returns after every sshd is stopped and state saved."""
    check_tools()  # before anything is bound or written
    cloud = Cloud(state_dir, boot_seconds=boot_seconds, api_key=api_key, faults=faults,
                  account_created=account_created)
    httpd = make_server(cloud, host, port)
    url = f"http://{host}:{httpd.server_address[1]}"
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cloud.start(url)
        worker = threading.Thread(target=httpd.serve_forever, name="vastsim-http", daemon=True)
        worker.start()
        sys.stdout.write(f"VAST_URL={url}\nVAST_API_KEY={cloud.api_key}\n")
        sys.stdout.write(f"vastsim: {len(cloud.catalogue.free_offers())} offers, state in "
                         f"{cloud.state_dir}, boot {boot_seconds:g} s, admin at {url}/_sim/\n")
        sys.stdout.flush()
        stop.wait()
        httpd.shutdown()
    finally:
        httpd.server_close()
        cloud.shutdown()
    sys.stdout.write("vastsim: stopped every instance, state saved\n")
    sys.stdout.flush()
