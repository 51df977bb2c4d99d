#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). On a fresh Debian
# machine with Go it installs what the tests need, then runs formatting,
# vet, staticcheck and the race-enabled test suite. .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "go test -race"
# -count=1: never report cached results as a fresh run.
go test -race -count=1 -timeout 20m ./...
