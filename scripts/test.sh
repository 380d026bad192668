#!/usr/bin/env bash
# Runs the whole test suite: go vet, a gofmt check, a go mod tidy check and
# go test -race.
# Installs redis-server with apt when it is missing (tests start their own
# redis-server processes on free ports; the system service is not used).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

# Packages the tests need: redis-server (every store and pipeline test),
# prometheus (promtool rule tests, a real Prometheus scraping recstream) and
# chromium (the status page in a headless browser).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing with apt-get: ${missing[*]}" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		sudo="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	# policy-rc.d keeps the packages from starting their system services.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
		trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	$sudo apt-get update
	$sudo apt-get install -y "${missing[@]}"
fi
redis-server --version

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting (run gofmt -w):" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go mod tidy"
# go.mod and go.sum are what go mod tidy makes of the imports: direct
# requirements without // indirect, nothing missing or unused.
if ! go mod tidy -diff; then
	echo "go mod tidy: go.mod or go.sum differ from the imports (run go mod tidy)" >&2
	exit 1
fi

echo "== go test"
go test -race -count=1 -timeout 20m ./...
