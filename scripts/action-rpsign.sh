#!/usr/bin/env bash
# The rpsign steps of the GitHub Action (action.yml), run from the action's
# directory on every runner: Linux, macOS (bash 3.2, BSD tools, shasum and
# no sha256sum) and Windows (Git Bash: RUNNER_TEMP with backslashes, .exe
# programs). e2e/action_script_test.go runs it with the environment of each.
#
#   action-rpsign.sh locate   where rpsign goes and its cache key: writes
#                             dir, path and key to $GITHUB_OUTPUT and
#                             RPSIGN to $GITHUB_ENV
#   action-rpsign.sh build    builds rpsign into $RPSIGN, unless the cache
#                             restored a working one there
#
# The cache key names the action's ref (github.action_ref; "local" for
# `uses: ./`), the runner's OS and architecture, the Go version and a hash
# of the sources rpsign is built from, so that a moved tag (v1) or a local
# change is built again and never served stale.
set -euo pipefail

fail() {
	echo "::error title=rustpatcher-go::$*"
	exit 1
}

# slashes turns a Windows path (D:\a\_temp) into one that both Git Bash and
# Go take (D:/a/_temp); other paths are unchanged.
slashes() {
	printf '%s' "$1" | tr '\\' '/'
}

# sha256 prints the SHA-256 of its standard input in hex: sha256sum on
# Linux and Windows, shasum on macOS.
sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 | cut -d' ' -f1
	else
		fail "neither sha256sum nor shasum on PATH"
	fi
}

case "${1:-}" in
locate)
	command -v go >/dev/null 2>&1 || fail "no go command on PATH: add actions/setup-go before this action"
	: "${RUNNER_TEMP:?not set: run inside GitHub Actions}"
	: "${GITHUB_OUTPUT:?not set: run inside GitHub Actions}"
	: "${GITHUB_ENV:?not set: run inside GitHub Actions}"
	exe=
	if [ "${RUNNER_OS:-}" = Windows ]; then exe=.exe; fi
	dir="$(slashes "$RUNNER_TEMP")/rustpatcher-go-action"
	src=$( (cat go.mod go.sum; find cmd/rpsign internal region -name '*.go' ! -name '*_test.go' | LC_ALL=C sort | while IFS= read -r f; do
		printf '%s\n' "$f"
		cat "$f"
	done) | sha256)
	ref=$(printf '%s' "${ACTION_REF:-local}" | tr -c 'A-Za-z0-9._-' '_')
	key="rustpatcher-go-rpsign-$ref-${RUNNER_OS:-unknown}-${RUNNER_ARCH:-unknown}-$(go env GOVERSION)-${src:0:16}"
	{
		echo "dir=$dir"
		echo "path=$dir/rpsign$exe"
		echo "key=$key"
	} >>"$GITHUB_OUTPUT"
	echo "RPSIGN=$dir/rpsign$exe" >>"$GITHUB_ENV"
	echo "rpsign: $dir/rpsign$exe, cache key $key"
	;;
build)
	: "${RPSIGN:?not set: run locate first}"
	if [ -x "$RPSIGN" ] && "$RPSIGN" --version >/dev/null 2>&1; then
		echo "rpsign restored from the cache: $("$RPSIGN" --version); not built"
		exit 0
	fi
	echo "building rpsign (not in the cache)"
	go build -trimpath -o "$RPSIGN" ./cmd/rpsign || fail "building rpsign failed"
	;;
*)
	fail "usage: action-rpsign.sh locate|build"
	;;
esac
