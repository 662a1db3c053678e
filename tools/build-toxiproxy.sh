#!/usr/bin/env bash
# Build Toxiproxy (toxiproxy-server, toxiproxy-cli) from the Go module proxy into the per-user
# cache: the link benchmarks and tests/link/ put it between us and a vastsim sshd to add
# latency, a bandwidth cap or a reset. Idempotent: binaries that exist and print the version
# are kept, so a second run does nothing. Prints the bin directory on stdout.
# VAST_GPU_CACHE moves the cache (a temp dir tests the build path from scratch).
set -euo pipefail

TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.5.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${VAST_GPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vast-gpu}"
DEST="$CACHE/toxiproxy-$TOXIPROXY_VERSION"
BIN="$DEST/bin"
WRAP="$CACHE/build-toxiproxy-$TOXIPROXY_VERSION"
MOD="github.com/Shopify/toxiproxy/v2"

log() { echo "build-toxiproxy: $*" >&2; }

ok() {  # the binary runs and says it is this version
  [ -x "$BIN/$1" ] && "$BIN/$1" -version 2>/dev/null | grep -qx "$1 version ${TOXIPROXY_VERSION#v}"
}

if ok toxiproxy-server && ok toxiproxy-cli; then
  echo "$BIN"
  exit 0
fi

GO_BIN_DIR=$("$ROOT/tools/ensure-go.sh") || { log "no usable Go (>= 1.25) to build toxiproxy"; exit 1; }
export PATH="$GO_BIN_DIR:$PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false
start=$(date +%s)
mkdir -p "$WRAP" "$BIN"
cd "$WRAP"
if [ ! -f go.mod ] || ! grep -q "$MOD $TOXIPROXY_VERSION" go.mod; then
  log "resolving toxiproxy $TOXIPROXY_VERSION from the Go module proxy"
  rm -f go.mod go.sum
  go mod init local/toxiproxy-tools >/dev/null 2>&1
  go get "$MOD@$TOXIPROXY_VERSION" >&2
fi
for cmd in server cli; do
  name="toxiproxy-$cmd"
  ok "$name" && continue
  log "compiling $name"
  go build -mod=mod -trimpath -ldflags "-s -w -X $MOD.Version=${TOXIPROXY_VERSION#v}" \
    -o "$BIN/$name.partial" "$MOD/cmd/$cmd" >&2
  mv "$BIN/$name.partial" "$BIN/$name"
  ok "$name" || { log "$BIN/$name does not print version ${TOXIPROXY_VERSION#v}"; exit 1; }
done
log "toxiproxy $TOXIPROXY_VERSION ready in $(( $(date +%s) - start )) s in $BIN"
echo "$BIN"
