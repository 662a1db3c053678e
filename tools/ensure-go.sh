#!/usr/bin/env bash
# Print the directory of a Go toolchain new enough to build the Pulumi CLI, installing one if
# needed: a `go` on PATH that is new enough is used as is; otherwise Debian's golang-go (too old
# by itself) fetches the official toolchain module golang.org/toolchain from the Go module proxy
# into the per-user cache, the same thing GOTOOLCHAIN does for newer Go versions.
set -euo pipefail

GO_VERSION="${GO_VERSION:-1.26.8}"
MIN_GO="1.25"
CACHE="${VAST_GPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vast-gpu}"
GOROOT_CACHED="$CACHE/go$GO_VERSION"

log() { echo "ensure-go: $*" >&2; }

new_enough() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null | sed 's/^go//') || return 1
  [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$MIN_GO" "$v" | sort -V | head -n1)" = "$MIN_GO" ]
}

if command -v go >/dev/null && new_enough "$(command -v go)"; then
  dirname "$(command -v go)"; exit 0
fi
if [ -x "$GOROOT_CACHED/bin/go" ] && new_enough "$GOROOT_CACHED/bin/go"; then
  echo "$GOROOT_CACHED/bin"; exit 0
fi

bootstrap=$(command -v go || true)
if [ -z "$bootstrap" ]; then
  log "no Go found: installing Debian's golang-go to fetch Go $GO_VERSION"
  command -v apt-get >/dev/null || { log "no apt-get: install Go >= $MIN_GO by hand and rerun" ; exit 1; }
  [ "$EUID" -eq 0 ] || { log "not root: run sudo apt-get install -y golang-go (or install Go >= $MIN_GO), then make setup"; exit 1; }
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go; } >&2
  bootstrap=$(command -v go)
fi
log "fetching golang.org/toolchain v0.0.1-go$GO_VERSION.linux-amd64 from the Go module proxy"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mod="golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')"
dir=$(cd "$work" && GOPATH="$work/gopath" GOFLAGS=-mod=mod GO111MODULE=on GOTOOLCHAIN=local \
  "$bootstrap" mod download -json "$mod" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -d "$dir" ] || { log "download of $mod failed"; exit 1; }
mkdir -p "$CACHE"
rm -rf "$GOROOT_CACHED.partial"
cp -r "$dir" "$GOROOT_CACHED.partial"
chmod -R u+w "$GOROOT_CACHED.partial"
chmod +x "$GOROOT_CACHED.partial"/bin/* "$GOROOT_CACHED.partial"/pkg/tool/*/*
rm -rf "$GOROOT_CACHED"
mv "$GOROOT_CACHED.partial" "$GOROOT_CACHED"
new_enough "$GOROOT_CACHED/bin/go" || { log "$GOROOT_CACHED/bin/go does not run"; exit 1; }
echo "$GOROOT_CACHED/bin"
