#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). On a fresh Debian
# machine with Go it installs what the tests need, then runs formatting,
# vet, staticcheck and the race-enabled test suite. .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "test dependencies"
# Debian packages the tests run for real: Chromium (the dashboard test,
# driven by playwright-core) and RabbitMQ (the AMQP bridge tests start
# their own rabbitmq-server). Node and npm come with the machine; the
# dashboard test's npm packages are pinned by test/ui/testdata's lockfile.
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
if [ -f test/ui/testdata/package-lock.json ]; then
  (cd test/ui/testdata && npm ci --no-audit --no-fund --loglevel=error)
fi

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
