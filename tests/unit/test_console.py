"""Output that cannot fail: a closed pipe makes prints go nowhere, never raise."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from workflow.console import SafeStream, say


def test_a_write_to_a_pipe_nobody_reads_is_dropped_not_raised() -> None:
    """In a child process, so the dup2 onto its stdout is the child's own business."""
    code = (
        "import os, sys\n"
        "from workflow.console import safe_std_streams\n"
        "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
        "with safe_std_streams():\n"
        "    for i in range(3):\n"
        "        print('x' * 100000, flush=True)\n"
        "    sys.stdout.flush()\n"
        "print('after', flush=True)\n"
        "sys.stderr.write('survived\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "survived\n"  # no BrokenPipeError, not even at exit


def test_a_closed_file_or_none_is_silent() -> None:
    closed = io.StringIO()
    closed.close()
    stream = SafeStream(closed)
    say("teardown goes on", stream)  # type: ignore[arg-type]
    assert stream.broken
    say("and on", SafeStream(None))  # type: ignore[arg-type]
    kept = io.StringIO()
    say("seen", kept)
    assert kept.getvalue() == "seen\n"
