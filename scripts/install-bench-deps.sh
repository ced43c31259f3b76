#!/usr/bin/env bash
# Installs, when missing, what the benchmarks compare gwpki with: stock step-ca
# v0.30.2 (go install, pure Go; building it takes two to three minutes). A step-ca of
# another version found on PATH is left alone and v0.30.2 is installed into
# $(go env GOPATH)/bin, which `make bench` puts first on PATH.
# Safe to run any number of times; when everything is present it only looks.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

STEP_CA_MODULE=github.com/smallstep/certificates
STEP_CA_VERSION=v0.30.2

# module_version BIN prints the version of the main module BIN was built from.
module_version() {
	go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

bin="$(gobin)/step-ca"
if [ ! -x "$bin" ] || [ "$(module_version "$bin")" != "$STEP_CA_VERSION" ]; then
	# Pure Go, as smallstep's release binaries are: the cgo build wants
	# libpcsclite for YubiKey support, which the benchmark does not use.
	CGO_ENABLED=0 go_install "$STEP_CA_MODULE/cmd/step-ca@$STEP_CA_VERSION"
fi
[ "$(module_version "$bin")" = "$STEP_CA_VERSION" ] ||
	die "$bin is not step-ca $STEP_CA_VERSION after install"
