"""Prints who and where it runs, and leaves a note in the results."""

import os
import platform
import sys
from pathlib import Path

work = Path(os.environ.get("WORK_DIR", "/work")) / "hello"
work.mkdir(parents=True, exist_ok=True)
name = sys.argv[1] if len(sys.argv) > 1 else "world"
text = f"hello, {name}, from instance {os.environ.get('CONTAINER_ID', '?')} ({platform.node()})"
print(text)
(work / f"{name}.txt").write_text(text + "\n")
