# shellcheck shell=bash
# Helpers shared by the install scripts. Source it; it does nothing by itself.

# log prints a progress line to stderr, prefixed with the calling script's name.
log() {
	printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2
}

# die prints an error line to stderr and exits 1.
die() {
	log "error: $*"
	exit 1
}

# quietly runs a command with its output kept in a temporary file, which is
# shown (on stderr) only when the command fails.
quietly() {
	local out status
	out="$(mktemp)"
	if "$@" >"$out" 2>&1; then
		rm -f "$out"
		return 0
	else
		status=$?
	fi
	cat "$out" >&2
	rm -f "$out"
	return "$status"
}

# gobin prints where `go install` puts binaries.
gobin() {
	local dir
	dir="$(go env GOBIN)"
	if [ -z "$dir" ]; then
		dir="$(go env GOPATH)/bin"
	fi
	printf '%s\n' "$dir"
}

# gopath_bin prints the bin folder of the first GOPATH entry.
gopath_bin() {
	local gopath
	gopath="$(go env GOPATH)"
	printf '%s/bin\n' "${gopath%%:*}"
}

# have_cmd NAME succeeds when NAME is on PATH, in gobin or in GOPATH/bin.
have_cmd() {
	command -v "$1" >/dev/null 2>&1 || [ -x "$(gobin)/$1" ] || [ -x "$(gopath_bin)/$1" ]
}

# go_install PKG@VERSION installs a Go command into gobin. Set CGO_ENABLED=0
# in its environment for a pure-Go build.
go_install() {
	log "installing $1 (go install)"
	# Outside any module so the project's go.mod has no say.
	(cd / && GOFLAGS='' quietly go install "$1")
}

# apt_install PKG... installs Debian packages (after one apt-get update), as
# root: directly when we are root, else through sudo when there is one.
apt_install() {
	local -a sudo=()
	command -v apt-get >/dev/null 2>&1 ||
		die "apt-get not found: install $* with your system's package manager"
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "need root to install $* (run as root or install sudo)"
		sudo=(sudo)
	fi
	log "installing $* (apt-get)"
	quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "$@"
}
