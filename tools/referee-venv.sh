#!/usr/bin/env bash
# .venv-referee: the official `vastai` CLI for tests/conformance, apart from the project's venv
# (its pins clash with ours). Idempotent: the stamp is a copy of requirements-referee.txt,
# compared by content. A changed file, a missing stamp or a broken venv rebuilds it from
# scratch, so a pin dropped from the file leaves no package behind; every package is pinned
# there (--no-deps) and `pip check` refuses a file that misses one.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-referee
stamp=$venv/.installed-requirements.txt
if [ -x "$venv/bin/vastai" ] && "$venv/bin/python" -c '' 2>/dev/null \
    && cmp -s requirements-referee.txt "$stamp"; then
  exit 0
fi
echo "referee: making $venv from requirements-referee.txt (vastai, the official CLI)"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  -r requirements-referee.txt
if ! "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null; then
  "$venv/bin/python" -m pip check --disable-pip-version-check || true
  echo "referee: requirements-referee.txt misses a dependency (above); pin it there" >&2
  exit 1
fi
cp requirements-referee.txt "$stamp"
