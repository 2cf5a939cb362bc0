#!/usr/bin/env bash
# The project's test command: installs what is missing, then vet, staticcheck
# and the race-enabled test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
echo "== go vet" >&2
go vet ./...
echo "== staticcheck" >&2
./.bin/staticcheck ./...
echo "== go test -race" >&2
go test -race -timeout 20m ./...
