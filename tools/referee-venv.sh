#!/usr/bin/env bash
# .venv-referee: the official `vastai` CLI for tests/conformance, apart from the project's venv
# (its pins clash with ours). Idempotent: the stamp is a copy of requirements-referee.txt,
# compared by content; a missing or broken venv is made anew.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-referee
stamp=$venv/.installed-requirements.txt
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "referee: making $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
if ! cmp -s requirements-referee.txt "$stamp"; then
  echo "referee: installing requirements-referee.txt (vastai, the official CLI)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-referee.txt
  cp requirements-referee.txt "$stamp"
fi
