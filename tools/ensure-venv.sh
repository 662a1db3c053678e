#!/usr/bin/env bash
# Make .venv match requirements.txt, doing only what is needed:
#   - .venv/bin/python missing or broken (e.g. its base Python was removed or upgraded):
#     the venv is made again from scratch (`python3 -m venv --clear`), then installed;
#   - the stamp (.venv/.installed-requirements.txt, a copy of the requirements it installed)
#     missing or different from requirements.txt: `pip install -r requirements.txt` again;
#   - otherwise nothing (one python start-up, well under a second).
# Contents are compared, not times, so a checkout or copy that touches files reinstalls
# nothing, and an old .venv from an older requirements.txt is always refreshed.
# Usage: tools/ensure-venv.sh [--dry-run] [DIR]   (DIR: the checkout, default this one)
# --dry-run says what it would do and does nothing.
set -euo pipefail

dry=
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
DIR="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VENV="$DIR/.venv"
PY="$VENV/bin/python"
REQ="$DIR/requirements.txt"
STAMP="$VENV/.installed-requirements.txt"

log() { echo "venv: $*"; }

[ -f "$REQ" ] || { log "no $REQ" >&2; exit 1; }
command -v python3 >/dev/null || { log "no python3 on PATH: run tools/system-deps.sh" >&2; exit 1; }

rebuild=
if [ ! -e "$PY" ]; then
  rebuild="$PY is missing"
elif ! "$PY" -c "import sys, pip" >/dev/null 2>&1; then
  rebuild="$PY does not run (or has no pip)"
fi
install=
if [ -n "$rebuild" ]; then
  install="a new venv"
elif [ ! -f "$STAMP" ]; then
  install="no stamp of what was installed ($STAMP)"
elif ! cmp -s "$REQ" "$STAMP"; then
  install="requirements.txt changed since the last install"
fi
[ -z "$install" ] && exit 0

if [ -n "$dry" ]; then
  [ -n "$rebuild" ] && log "would rebuild $VENV: $rebuild"
  log "would pip install -r requirements.txt: $install"
  exit 0
fi
start=$(date +%s)
if [ -n "$rebuild" ]; then
  log "rebuilding $VENV: $rebuild"
  python3 -m venv --clear "$VENV"
fi
log "installing requirements.txt ($install)"
rm -f "$STAMP"
"$PY" -m pip install --quiet --disable-pip-version-check -r "$REQ"
cp "$REQ" "$STAMP"
log "ready in $(( $(date +%s) - start )) s"
