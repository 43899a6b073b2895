#!/usr/bin/env bash
# Generates API clients from docs/openapi.json (the document the tests keep current):
#   clients/csharp/AfnioClient.g.cs   NSwag, System.Text.Json (compiled and exercised by the tests)
#   clients/typescript/afnio.d.ts     openapi-typescript types (needs Node.js and npm)
# After an API change: AFNIO_UPDATE_OPENAPI=1 scripts/test.sh, then this script.
set -euo pipefail
cd "$(dirname "$0")/.."

dotnet tool restore >/dev/null
dotnet nswag openapi2csclient /input:docs/openapi.json /output:clients/csharp/AfnioClient.g.cs \
  /namespace:Afnio.Client /className:AfnioClient /jsonLibrary:SystemTextJson \
  /generateClientInterfaces:true /generateOptionalParameters:true /useBaseUrl:false \
  /operationGenerationMode:SingleClientFromOperationId /generateExceptionClasses:true
echo "wrote clients/csharp/AfnioClient.g.cs"

if command -v npx >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm init -y >/dev/null && npm install --silent openapi-typescript@7 typescript@5 >/dev/null)
  "$tmp/node_modules/.bin/openapi-typescript" docs/openapi.json -o clients/typescript/afnio.d.ts
  rm -rf "$tmp"
else
  echo "npx not found: skipped the TypeScript types"
fi
