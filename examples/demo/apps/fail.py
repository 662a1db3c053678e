"""Fails on purpose, to show that a failing task warns and the batch goes on."""

import sys

print("about to fail on purpose", flush=True)
print("fail: this task exits 3", file=sys.stderr)
sys.exit(3)
