#!/usr/bin/env bash
# Runs the whole test suite: go vet, a gofmt check and go test -race.
# Installs redis-server with apt when it is missing (tests start their own
# redis-server processes on free ports; the system service is not used).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

if ! command -v redis-server >/dev/null 2>&1; then
	echo "redis-server not found: installing it with apt-get" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		sudo="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	# policy-rc.d keeps the package from starting the system service.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
		trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	$sudo apt-get update
	$sudo apt-get install -y --no-install-recommends redis-server
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

echo "== go test"
go test -race -count=1 -timeout 20m ./...
