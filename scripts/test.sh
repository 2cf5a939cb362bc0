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
go test -race -timeout 20m $(go list ./... | grep -v '/test/chaos$')
# Allocation counts hold only without the race detector, which adds its
# own: the tests that count them (testing.AllocsPerRun) run again here.
echo "== allocation tests (no -race)" >&2
go test -count=1 -timeout 5m -run 'Alloc' ./session/ ./client/ ./balancer/ ./grpcclient/ ./internal/refsvc/thumbnail/ ./server/ ./metrics/ ./requestlog/ ./deadline/ ./lifecycle/ ./service/
# The quickstart is its own module, built and run as a user would.
echo "== examples/quickstart" >&2
(cd examples/quickstart && go vet ./... && ../../.bin/staticcheck ./... && go test -race -count=1 -timeout 5m ./...)
# The adversarial suite runs on its own after the unit tests: real
# processes under faults and hostile input, each case bounded in time.
echo "== test/chaos" >&2
go test -count=1 -timeout 15m ./test/chaos/
