#!/usr/bin/env bash
# Build the Pulumi CLI and a Python language host from the Go module proxy into a per-user
# cache (shared by every clone on this machine, CI's included), and point the clone's
# .tools/pulumi at it. Idempotent: what is built and current is reused, so a second run does
# nothing. See shared/docs/pulumi-offline.md §1, §2, §6, and tools/langhost/main.go for why the
# language host is our own.
set -euo pipefail

PULUMI_VERSION="${PULUMI_VERSION:-v3.274.1}"
MIN_PATH_VERSION="3.272.0"   # a pulumi on PATH at least this new (the SDK's version) is used as is
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${VAST_GPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vast-gpu}"
DEST="$CACHE/pulumi-$PULUMI_VERSION"
BIN="$DEST/bin"
WRAP="$CACHE/build-$PULUMI_VERSION"
LANGHOST_SRC="$ROOT/tools/langhost/main.go"
LANGHOST_STAMP="$BIN/.langhost.sha256"
SDK_MOD="github.com/pulumi/pulumi/sdk/v3"
CLI_PKG="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
# `pulumi version` writes a log under $PULUMI_HOME/logs: run it in the environment that
# workflow/pulumi_env.py gives pulumi everywhere (the clone's own home), not the user's ~/.pulumi.
eval "$(python3 "$ROOT/tools/pulumi_env.py")"

log() { echo "build-pulumi: $*"; }

path_pulumi_ok() {
  local p v
  p=$(command -v pulumi 2>/dev/null) || return 1
  case "$(readlink -f "$p")" in "$CACHE"/*) return 1 ;; esac
  v=$(pulumi version 2>/dev/null | sed 's/^v//') || return 1
  [ "$(printf '%s\n%s\n' "$MIN_PATH_VERSION" "$v" | sort -V | head -n1)" = "$MIN_PATH_VERSION" ] || return 1
  log "using pulumi v$v from PATH ($p)"
}

cli_ok() { [ -x "$BIN/pulumi" ] && [ "$("$BIN/pulumi" version 2>/dev/null)" = "$PULUMI_VERSION" ]; }
langhost_ok() {
  [ -x "$BIN/pulumi-language-python" ] && [ -f "$LANGHOST_STAMP" ] \
    && [ "$(cat "$LANGHOST_STAMP")" = "$(sha256sum "$LANGHOST_SRC" | cut -d' ' -f1)" ]
}
scripts_ok() { [ -f "$BIN/pulumi-language-python-exec" ] && [ -x "$BIN/pulumi-resource-pulumi-python" ]; }
link_tools() { mkdir -p "$ROOT/.tools"; ln -sfn "$DEST" "$ROOT/.tools/pulumi"; }

if [ -z "${VAST_GPU_FORCE_BUILD:-}" ] && [ ! -e "$ROOT/.tools/pulumi" ] && path_pulumi_ok; then
  exit 0
fi
if cli_ok && langhost_ok && scripts_ok; then
  link_tools
  exit 0
fi

GO_BIN_DIR=$("$ROOT/tools/ensure-go.sh") || { log "no usable Go: install Go >= 1.25 or put a pulumi >= v$MIN_PATH_VERSION on PATH" >&2; exit 1; }
export PATH="$GO_BIN_DIR:$PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false
start=$(date +%s)
mkdir -p "$WRAP" "$BIN"
cd "$WRAP"
if [ ! -f go.mod ] || ! grep -q "$CLI_PKG" go.mod; then
  log "resolving pulumi $PULUMI_VERSION from the Go module proxy"
  rm -f go.mod go.sum
  go mod init local/pulumi-tools >/dev/null 2>&1
  go get "$SDK_MOD@$PULUMI_VERSION"
  go get -tool "$CLI_PKG@$PULUMI_VERSION"
fi
FLAGS=(-trimpath -tags osusergo,grpcnotrace)
if ! cli_ok; then
  log "compiling pulumi $PULUMI_VERSION (about 5 min cold on 2 cores; quiet meanwhile)"
  go build "${FLAGS[@]}" -ldflags "-s -w -X $SDK_MOD/go/common/version.Version=$PULUMI_VERSION" \
    -o "$BIN/pulumi.partial" "$CLI_PKG"
  mv "$BIN/pulumi.partial" "$BIN/pulumi"
fi
if ! langhost_ok; then
  log "compiling the Python language host (tools/langhost)"
  mkdir -p cmd/pulumi-language-python
  cp "$LANGHOST_SRC" cmd/pulumi-language-python/main.go
  go build -mod=mod "${FLAGS[@]}" -ldflags "-s -w -X main.version=${PULUMI_VERSION#v}" \
    -o "$BIN/pulumi-language-python" ./cmd/pulumi-language-python
  sha256sum "$LANGHOST_SRC" | cut -d' ' -f1 > "$LANGHOST_STAMP"
fi
if ! scripts_ok; then
  SDK=$(go list -m -f '{{.Dir}}' "$SDK_MOD")
  install -m 0755 "$SDK/python/cmd/pulumi-language-python-exec" \
    "$SDK/python/dist/pulumi-resource-pulumi-python" "$BIN/"
fi
cli_ok || { log "the build finished but $BIN/pulumi does not print $PULUMI_VERSION" >&2; exit 1; }
link_tools
log "pulumi $PULUMI_VERSION ready in $(( $(date +%s) - start )) s; $(du -sh "$DEST" | cut -f1) in $DEST"
