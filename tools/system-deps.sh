#!/usr/bin/env bash
# Every system tool this project needs, in one table, and the Debian package that brings it.
# `make setup` (and so `make demo` and `make test`) runs this first:
#   - all present: says nothing, exits 0 (bash built-ins only, a few milliseconds);
#   - something missing, as root with apt-get: installs exactly the missing packages;
#   - something missing otherwise: stops at once with the `sudo apt-get install ...` that fixes it.
# `--check` only reports: exit 1 when something is missing, never installs.
# Only bash built-ins are used, so it runs (and reports) on a machine that lacks everything else.
# sshd must be started by absolute path: /usr/sbin/sshd, or $VASTSIM_SSHD as vastsim takes it.
# SYSTEM_DEPS_ROOT (default empty, i.e. /) is where fixed paths (/usr/sbin/sshd,
# /usr/lib/postgresql) are looked for; the tests point it at an empty directory.
set -euo pipefail

# tool | package | why the project needs it
TABLE=(
  "sshd|openssh-server|vastsim: every rented instance is a real sshd (/usr/sbin/sshd)"
  "ssh|openssh-client|sync, run, pull and shell reach an instance over SSH"
  "ssh-keygen|openssh-client|key pairs of the demo and the tests, vastsim's host keys"
  "scp|openssh-client|tests and bench/ compare sync and pull with scp"
  "rsync|rsync|sync and pull use rsync where it is; tests and bench/ compare with it"
  "unshare|util-linux|vastsim as root: each instance in its own mount and pid namespace"
  "mount|mount|vastsim as root: each instance's own /app and /work (bind mounts)"
  "setpriv|util-linux|team-backend tests as root: PostgreSQL runs as nobody"
  "tar|tar|sync and pull stream files as tar"
  "find|findutils|pull's remote listing (GNU find -printf)"
  "pgrep|procps|vastsim and the tests find an instance's processes"
  "git|git|sync sends git-tracked files; tests make git repos"
  "make|make|make setup, make demo, make test"
  "strace|strace|tests count the pulumi processes a command starts"
  "initdb|postgresql|team-backend tests: a real PostgreSQL server (/usr/lib/postgresql/*/bin)"
  "pg_ctl|postgresql|team-backend tests: starts and stops that server"
  "python3|python3|the project's Python, 3.11 or newer"
  "python3 -m venv|python3-venv|make setup builds .venv with it"
)
MIN_PY_MINOR=11
ROOT_PREFIX="${SYSTEM_DEPS_ROOT:-}"

log() { echo "system-deps: $*" >&2; }

pg_has() {  # Debian keeps the server binaries off PATH, in /usr/lib/postgresql/<major>/bin
  local f
  for f in "$ROOT_PREFIX"/usr/lib/postgresql/*/bin/"$1"; do [ -x "$f" ] && return 0; done
  command -v "$1" >/dev/null 2>&1
}

py_state=  # one python3 start-up for both rows: ok | no-venv | old | none
python_state() {
  if [ -z "$py_state" ]; then
    if ! command -v python3 >/dev/null 2>&1; then
      py_state=none
    else
      py_state=$(python3 -c "
import sys
if sys.version_info < (3, $MIN_PY_MINOR): print('old'); sys.exit()
try:
    import venv, ensurepip
except ImportError:
    print('no-venv'); sys.exit()
print('ok')" 2>/dev/null) || py_state=none
    fi
  fi
}

present() {
  case "$1" in
    sshd) [ -x "${VASTSIM_SSHD:-$ROOT_PREFIX/usr/sbin/sshd}" ] ;;
    initdb | pg_ctl) pg_has "$1" ;;
    python3) python_state; [ "$py_state" = ok ] || [ "$py_state" = no-venv ] ;;
    "python3 -m venv") python_state; [ "$py_state" = ok ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing_lines=()
packages=()
scan() {
  missing_lines=()
  packages=()
  py_state=
  local row tool pkg why p seen
  for row in "${TABLE[@]}"; do
    IFS='|' read -r tool pkg why <<<"$row"
    present "$tool" && continue
    missing_lines+=("$(printf '  %-16s package %-15s %s' "$tool" "$pkg" "$why")")
    seen=
    for p in "${packages[@]}"; do [ "$p" = "$pkg" ] && seen=1; done
    [ -n "$seen" ] || packages+=("$pkg")
  done
}

report() {
  log "missing: ${#missing_lines[@]} tool(s), from the package(s) ${packages[*]}"
  printf '%s\n' "${missing_lines[@]}" >&2
}

check_only=
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) log "unknown option '$1' (usage: tools/system-deps.sh [--check])"; exit 2 ;;
esac

scan
[ ${#missing_lines[@]} -eq 0 ] && exit 0
report
fix="sudo apt-get install -y ${packages[*]}"
if [ -n "$check_only" ]; then
  log "--check installs nothing. Fix: $fix   (or run \`make setup\` as root)"
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "no apt-get here: install the packages above (Debian names) with your package manager," \
      "then run \`make setup\` again"
  exit 1
fi
if [ "$EUID" -ne 0 ]; then
  log "not root, so nothing was installed. Run:"
  echo "  $fix" >&2
  log "then \`make setup\` again."
  exit 1
fi
log "installing ${packages[*]} with apt-get (DEBIAN_FRONTEND=noninteractive)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
scan
if [ ${#missing_lines[@]} -gt 0 ]; then
  log "still missing after apt-get install:"
  report
  exit 1
fi
log "installed ${packages[*]}"
