#!/usr/bin/env bash
# Regenerates the TypeScript gRPC/protobuf code in api/gen/ from api/**/*.proto
# with ts-proto through buf (both pinned in package.json devDependencies).
#   hack/gen-api.sh            regenerate api/gen in place
#   hack/gen-api.sh OUT_DIR    generate into OUT_DIR instead (used by the
#                              staleness test to compare with the committed code)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/api/gen}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$repo"
# buf resolves plugin paths and `out` relative to the working directory.
sed -e "s#local: node_modules/.bin/protoc-gen-ts_proto#local: $repo/node_modules/.bin/protoc-gen-ts_proto#" \
    -e "s#out: gen#out: $tmp/gen#" api/buf.gen.yaml > "$tmp/buf.gen.yaml"
node_modules/.bin/buf generate api --template "$tmp/buf.gen.yaml"
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp/gen" "$out"
