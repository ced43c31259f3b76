#!/usr/bin/env bash
# Installs, when missing, the real peers gwpki's tests talk to (see "Real peers
# the tests use" in DESIGN.md):
#   step               the smallstep CLI (go install)
#   openssl            ocsp, crl, verify, s_client (apt)
#   softhsm2-util      SoftHSM2 and its PKCS#11 module (apt)
#   mosquitto_pub/sub  MQTT clients (apt)
#   rsvg-convert       librsvg, renders the SVG labels (apt librsvg2-bin)
#   curl               an HTTPS client with client certificates (apt)
#   tmux               a terminal that runs gwpki tui in TestTUIInTmux (apt)
# Safe to run any number of times; when everything is present it only looks.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

STEP_CLI=github.com/smallstep/cli/cmd/step@v0.21.0
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so

PATH="$PATH:$(gobin):$(gopath_bin)"
export PATH

missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ! command -v softhsm2-util >/dev/null 2>&1 || [ ! -e "$SOFTHSM_MODULE" ]; then
	missing+=(softhsm2)
fi
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v rsvg-convert >/dev/null 2>&1 || missing+=(librsvg2-bin)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ "${#missing[@]}" -gt 0 ]; then
	apt_install "${missing[@]}"
fi

have_cmd step || go_install "$STEP_CLI"

# Check rather than trust: fail here with a clear message, not in a test.
for tool in step openssl softhsm2-util mosquitto_pub rsvg-convert curl tmux; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after install"
done
[ -e "$SOFTHSM_MODULE" ] || die "$SOFTHSM_MODULE is still missing after installing softhsm2"
