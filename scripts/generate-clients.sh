#!/usr/bin/env bash
# Generates API clients from docs/openapi.json (the document the tests keep current):
#   clients/csharp/AfnioClient.g.cs   NSwag, System.Text.Json (compiled and exercised by the tests)
#   clients/typescript/afnio.d.ts     openapi-typescript types (needs Node.js and npm)
# After an API change: AFNIO_UPDATE_OPENAPI=1 scripts/test.sh, then this script.
# With --check (CI runs this; the tests check that the document is what the API serves): verifies that
# both committed clients are what the document generates, and compiles the TypeScript loop
# (clients/typescript/loop.ts) against the types with tsc --strict; changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

csharp() {
  dotnet nswag openapi2csclient /input:docs/openapi.json "/output:$1" \
    /namespace:Afnio.Client /className:AfnioClient /jsonLibrary:SystemTextJson \
    /generateClientInterfaces:true /generateOptionalParameters:true /useBaseUrl:false \
    /operationGenerationMode:SingleClientFromOperationId /generateExceptionClasses:true >/dev/null
}

# The TypeScript tools, pinned, installed once into a cache folder (Node.js and npm from apt if missing).
node_tools() {
  local dir=${AFNIO_NODE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/afnio-node-tools}
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found; installing Node.js with apt..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) >&2 || return 1
  fi
  if [ ! -x "$dir/node_modules/.bin/tsc" ] || [ ! -x "$dir/node_modules/.bin/openapi-typescript" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund openapi-typescript@7.9.1 typescript@5.9.3 >/dev/null) >&2 || return 1
  fi
  echo "$dir/node_modules/.bin"
}

dotnet tool restore >/dev/null
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  csharp "$tmp/AfnioClient.g.cs"
  if ! diff -q "$tmp/AfnioClient.g.cs" clients/csharp/AfnioClient.g.cs >/dev/null; then
    echo "error: clients/csharp/AfnioClient.g.cs is stale; run scripts/generate-clients.sh"
    exit 1
  fi
  echo "clients/csharp/AfnioClient.g.cs matches docs/openapi.json"
  bin=$(node_tools) || { echo "error: could not install the TypeScript tools"; exit 1; }
  "$bin/openapi-typescript" docs/openapi.json -o "$tmp/afnio.d.ts" >/dev/null 2>&1
  if ! diff -q "$tmp/afnio.d.ts" clients/typescript/afnio.d.ts >/dev/null; then
    echo "error: clients/typescript/afnio.d.ts is stale; run scripts/generate-clients.sh"
    exit 1
  fi
  echo "clients/typescript/afnio.d.ts matches docs/openapi.json"
  "$bin/tsc" -p clients/typescript || { echo "error: clients/typescript/loop.ts does not compile against the generated types"; exit 1; }
  echo "clients/typescript/loop.ts compiles against the generated types (tsc --strict)"
  exit 0
fi

csharp clients/csharp/AfnioClient.g.cs
echo "wrote clients/csharp/AfnioClient.g.cs"
bin=$(node_tools) || { echo "error: could not install the TypeScript tools"; exit 1; }
"$bin/openapi-typescript" docs/openapi.json -o clients/typescript/afnio.d.ts
"$bin/tsc" -p clients/typescript
