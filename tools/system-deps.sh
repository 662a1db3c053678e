#!/usr/bin/env bash
# The one list of system tools vast-gpu needs (vastsim, the tests, the tasks), checked before
# anything slow. `make setup` runs it; so does .ci/run (through make setup).
#
#   tools/system-deps.sh           check; as root with apt-get, install what is missing
#   tools/system-deps.sh --check   check only: exit 1 naming each missing tool and its package
#
# A tool is found on PATH, or at the absolute path given (sshd must be started by absolute
# path: /usr/sbin/sshd, or $VASTSIM_SSHD as vastsim takes it). Each row: tool, where to look,
# Debian package, why.
set -euo pipefail

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
  *) echo "system-deps: unknown option '$1' (use --check or nothing)" >&2; exit 2 ;;
esac

SSHD="${VASTSIM_SSHD:-/usr/sbin/sshd}"
PG_INITDB="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"

# tool | how to find it | package | needed for
TABLE="
sshd|path:$SSHD|openssh-server|vastsim's instances are real sshd processes
ssh|cmd:ssh|openssh-client|pull's byte stream, rsync and the tests' logins
ssh-keygen|cmd:ssh-keygen|openssh-client|host and user keys (vastsim, the tests)
scp|cmd:scp|openssh-client|the benchmarks' reference
rsync|cmd:rsync|rsync|sync's rsync method and the benchmarks' reference
unshare|cmd:unshare|util-linux|vastsim's per-instance mount and pid namespaces
git|cmd:git|git|which files of a source tree are synced
tar|cmd:tar|tar|sync and pull streams
find|cmd:find|findutils|pull's remote listing (GNU find -printf)
pgrep|cmd:pgrep|procps|vastsim and the tests find instance processes
initdb|path:${PG_INITDB:-/usr/lib/postgresql/VERSION/bin/initdb}|postgresql|the team backend's tests (a real PostgreSQL server)
python3 -m venv|venv|python3-venv|the project's .venv
"

missing_tools=()
missing_pkgs=()
while IFS='|' read -r tool how pkg why; do
  [ -n "$tool" ] || continue
  case "$how" in
    cmd:*) command -v "${how#cmd:}" >/dev/null 2>&1 && continue ;;
    path:*) [ -x "${how#path:}" ] && continue ;;
    venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && continue ;;
  esac
  missing_tools+=("$tool ($pkg: $why)")
  case " ${missing_pkgs[*]-} " in *" $pkg "*) ;; *) missing_pkgs+=("$pkg") ;; esac
done <<< "$TABLE"

if [ ${#missing_tools[@]} -eq 0 ]; then
  exit 0
fi

echo "system-deps: missing:" >&2
printf '  %s\n' "${missing_tools[@]}" >&2
if [ "$check_only" = 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${missing_pkgs[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >&2
  exec "$0" --check
fi
echo "system-deps: install them with:" >&2
echo "  sudo apt-get install -y ${missing_pkgs[*]}" >&2
exit 1
