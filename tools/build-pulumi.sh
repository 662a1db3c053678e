#!/usr/bin/env bash
# Build the Pulumi CLI and the Python language host from the Go module proxy into a per-user
# cache, and point the clone's .tools/ at it. Idempotent: a cached build that prints the right
# version is reused, so a second run does nothing. See ../shared/docs/pulumi-offline.md §1, §2, §6.
set -euo pipefail

PULUMI_VERSION="${PULUMI_VERSION:-v3.274.1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${VAST_GPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vast-gpu}"
DEST="$CACHE/pulumi-$PULUMI_VERSION"
BIN="$DEST/bin"
LINK="$ROOT/.tools/pulumi"

link_tools() {
  mkdir -p "$ROOT/.tools"
  ln -sfn "$DEST" "$LINK"
}

have_build() {
  [ -x "$BIN/pulumi" ] && [ -x "$BIN/pulumi-language-python" ] \
    && [ -f "$BIN/pulumi-language-python-exec" ] && [ -x "$BIN/pulumi-resource-pulumi-python" ] \
    && [ "$("$BIN/pulumi" version 2>/dev/null)" = "$PULUMI_VERSION" ]
}

if have_build; then
  link_tools
  exit 0
fi

command -v go >/dev/null || { echo "build-pulumi: Go is needed to build the Pulumi CLI (install golang or put go on PATH)" >&2; exit 1; }

start=$(date +%s)
echo "build-pulumi: building pulumi $PULUMI_VERSION into $DEST (a cold build takes 10-30 min on 2 cores)"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false
WRAP="$CACHE/build-$PULUMI_VERSION"
mkdir -p "$WRAP" "$BIN.partial"
cd "$WRAP"
[ -f go.mod ] || go mod init local/pulumi-tools >/dev/null
go get "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
go get -tool "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@$PULUMI_VERSION"
HASH=$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Origin", {}).get("Hash", ""))')
[ -n "$HASH" ] || { echo "build-pulumi: the proxy gave no commit hash for sdk/v3@$PULUMI_VERSION" >&2; exit 1; }
go get -tool "github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3@$HASH"
go list -m github.com/pulumi/pulumi/pkg/v3 github.com/pulumi/pulumi/sdk/v3

FLAGS=(-trimpath -tags osusergo,grpcnotrace)
LDFLAGS="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
go build "${FLAGS[@]}" -ldflags "$LDFLAGS" -o "$BIN.partial/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
go build "${FLAGS[@]}" -ldflags "$LDFLAGS" -o "$BIN.partial/pulumi-language-python" \
  github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
SDK=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0755 "$SDK/python/cmd/pulumi-language-python-exec" "$SDK/python/dist/pulumi-resource-pulumi-python" "$BIN.partial/"
rm -rf "$BIN"
mv "$BIN.partial" "$BIN"
have_build || { echo "build-pulumi: the build finished but $BIN/pulumi does not print $PULUMI_VERSION" >&2; exit 1; }
link_tools
echo "build-pulumi: built pulumi $PULUMI_VERSION in $(( $(date +%s) - start )) s; $(du -sh "$DEST" | cut -f1) in $DEST"
