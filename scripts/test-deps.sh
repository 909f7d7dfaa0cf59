#!/usr/bin/env bash
# test-deps.sh: installs and registers what the tests need, so that the
# tests themselves install nothing. Idempotent: what is there is kept.
#
#   1. The Debian packages of the platform and network tests, with apt-get
#      (as root, or through sudo): qemu-user-static and binfmt-support
#      (linux/arm64 under qemu-user), wine64 and gcc-mingw-w64-x86-64
#      (windows/amd64 under Wine), osslsigncode and openssl (Authenticode),
#      iproute2 and nftables (the NAT test's network namespaces).
#   2. The kernel's binfmt_misc handler for linux/arm64 programs
#      (qemu-aarch64): binfmt_misc mounted, the entry enabled. It stays
#      registered.
#   3. The pinned Go tools goreleaser, actionlint and act (versions in
#      internal/testtools), with go install as the calling user, into
#      $XDG_CACHE_HOME/rustpatcher-go/tools/<name>-<version>/ (or the
#      platform's user cache directory), where the tests look for them.
#      goreleaser takes about 12 minutes to build with a cold build cache
#      on 2 cores.
#   4. Every module go mod tidy reads, into the module cache: the doc tests
#      (e2e/docs_test.go) follow the README's steps for app authors, whose
#      go mod tidy runs offline (GOPROXY=off). go mod download alone misses
#      the go.mod files of the dependencies' test imports.
#
# Steps 1 and 2 run on Linux with apt-get only; elsewhere they are skipped
# with a note, and the tests that need them skip too.
set -euo pipefail
cd "$(dirname "$0")/.."

# as_root runs its command as root: directly when root, else with sudo.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo > /dev/null 2>&1; then
		sudo "$@"
	else
		echo "test-deps.sh: need root (or sudo) for: $*" >&2
		return 1
	fi
}

if [ "$(uname -s)" = Linux ] && command -v apt-get > /dev/null 2>&1; then
	# command:package pairs; Wine's loader is not on PATH.
	need=(
		qemu-aarch64-static:qemu-user-static
		update-binfmts:binfmt-support
		/usr/lib/wine/wine64:wine64
		x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64
		osslsigncode:osslsigncode
		openssl:openssl
		ip:iproute2
		nft:nftables
	)
	missing=()
	for pair in "${need[@]}"; do
		cmd=${pair%%:*}
		if ! command -v "$cmd" > /dev/null 2>&1 && [ ! -x "$cmd" ]; then
			missing+=("${pair#*:}")
		fi
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "test-deps.sh: apt-get install ${missing[*]}"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q > /dev/null
		as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
			install -y -q --no-install-recommends "${missing[@]}" > /dev/null
	else
		echo "test-deps.sh: Debian packages present"
	fi

	binfmt=/proc/sys/fs/binfmt_misc
	if [ "$(uname -m)" != aarch64 ]; then
		if [ ! -e "$binfmt/status" ]; then
			as_root mount -t binfmt_misc binfmt_misc "$binfmt"
		fi
		if ! grep -qx enabled "$binfmt/qemu-aarch64" 2> /dev/null; then
			echo "test-deps.sh: update-binfmts --enable qemu-aarch64"
			# binfmt-support may not have imported qemu's format yet
			# (a container without its service running).
			if [ ! -e "$binfmt/qemu-aarch64" ]; then
				as_root update-binfmts --import qemu-aarch64 || true
			fi
			as_root update-binfmts --enable qemu-aarch64
		fi
		grep -qx enabled "$binfmt/qemu-aarch64"
		echo "test-deps.sh: binfmt_misc runs linux/arm64 programs with qemu-aarch64"
	fi
else
	echo "test-deps.sh: not Linux with apt-get: no Debian packages or binfmt handlers; the tests that need them skip" >&2
fi

go run ./internal/testtools/installtools

if ! go mod tidy -diff > /dev/null; then
	echo "test-deps.sh: go mod tidy -diff failed (above): the doc tests need the modules it reads" >&2
	exit 1
fi
echo "test-deps.sh: the module cache holds what go mod tidy reads"
