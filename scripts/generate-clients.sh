#!/usr/bin/env bash
# Generates API clients from docs/openapi.json (the document the tests keep current):
#   clients/csharp/AfnioClient.g.cs   NSwag, System.Text.Json (compiled and exercised by the tests)
#   clients/typescript/afnio.d.ts     openapi-typescript types (needs Node.js and npm)
# After an API change: AFNIO_UPDATE_OPENAPI=1 scripts/test.sh, then this script.
# With --check: only verifies that the committed C# client is what the document generates (CI runs this;
# the tests check that the document is what the API serves), and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

csharp() {
  dotnet nswag openapi2csclient /input:docs/openapi.json "/output:$1" \
    /namespace:Afnio.Client /className:AfnioClient /jsonLibrary:SystemTextJson \
    /generateClientInterfaces:true /generateOptionalParameters:true /useBaseUrl:false \
    /operationGenerationMode:SingleClientFromOperationId /generateExceptionClasses:true >/dev/null
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
  exit 0
fi

csharp clients/csharp/AfnioClient.g.cs
echo "wrote clients/csharp/AfnioClient.g.cs"

if command -v npx >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm init -y >/dev/null && npm install --silent openapi-typescript@7 typescript@5 >/dev/null)
  "$tmp/node_modules/.bin/openapi-typescript" docs/openapi.json -o clients/typescript/afnio.d.ts
  rm -rf "$tmp"
else
  echo "npx not found: skipped the TypeScript types"
fi
