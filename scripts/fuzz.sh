#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each.
#   scripts/fuzz.sh [FUZZTIME]     (default 20s; any `go test -fuzztime` value)
# Targets are found with `go test -list` in each package that has test files.
# Each target's output is shown only when it fails; a failure leaves the
# crashing input under the package's testdata/fuzz/ as `go test` does.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

fuzztime="${1:-20s}"

pkgs="$(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...)"
failed=0
ran=0
for pkg in $pkgs; do
	if ! list="$(go test -list '^Fuzz' "$pkg" 2>&1)"; then
		printf '%s\n' "$list" >&2
		log "FAIL: $pkg does not build"
		failed=$((failed + 1))
		continue
	fi
	targets="$(grep '^Fuzz' <<<"$list" || true)"
	for target in $targets; do
		log "$pkg $target ($fuzztime)"
		ran=$((ran + 1))
		if ! quietly go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			log "FAIL: $pkg $target"
			failed=$((failed + 1))
		fi
	done
done
log "$ran fuzz targets run, $failed failed"
[ "$failed" -eq 0 ]
