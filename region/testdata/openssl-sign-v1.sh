#!/bin/sh
# openssl-sign-v1.sh FILE OFFSET CONTENT_END SEED_HEX VERSION TARGET [OFF:LEN]...
#
# An independent implementation of the v1 region (docs/FORMAT.md), for the
# cross-check in openssl_test.go: it uses only POSIX tools and OpenSSL.
# FILE holds a region at OFFSET; its content is the first CONTENT_END bytes;
# each OFF:LEN names a header field a code signer rewrites (zero in the
# content). Prints the 176 bytes of the signed region in hex.
set -eu
file=$1 off=$2 end=$3 seed=$4 version=$5 target=$6
shift 6
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# u64le N: N as 8 little-endian bytes, in hex.
u64le() {
	n=$1 out="" i=0
	while [ $i -lt 8 ]; do
		out="$out$(printf '%02x' $(( (n >> (8 * i)) & 255 )))"
		i=$((i + 1))
	done
	printf '%s' "$out"
}
# padded TEXT LEN: TEXT and NUL bytes up to LEN, in hex.
padded() {
	h=$(printf '%s' "$1" | xxd -p | tr -d '\n')
	while [ ${#h} -lt $(($2 * 2)) ]; do h="${h}00"; done
	printf '%s' "$h"
}
zero() { # zero OFF LEN: zero LEN bytes of the content at OFF
	head -c "$2" /dev/zero | dd of="$tmp/content" bs=1 seek="$1" conv=notrunc 2>/dev/null
}

# The content: the first CONTENT_END bytes, the region and the rewritten
# header fields zeroed.
head -c "$end" "$file" > "$tmp/content"
zero "$off" 176
for r in "$@"; do zero "${r%%:*}" "${r##*:}"; done

# Leaves: SHA-256 of each 1 MiB piece; root: SHA-256 of the domain, the
# content length and the leaves.
mkdir "$tmp/pieces"
split -b 1048576 -a 6 "$tmp/content" "$tmp/pieces/p."
{ printf 'rustpatcher-go/v1 pieces\000'; u64le "$end" | xxd -r -p
  for p in "$tmp"/pieces/p.*; do openssl dgst -sha256 -binary "$p"; done; } > "$tmp/rootin"
root=$(openssl dgst -sha256 -binary "$tmp/rootin" | xxd -p | tr -d '\n')

start=$(printf '\027RUSTPATCHER/V1\027' | xxd -p)
endm=$(printf '\027V1/RUSTPATCHER\027' | xxd -p)
head="$start$root$(u64le "$end")$(u64le "$off")"
tail="$(padded "$version" 16)$(padded "$target" 16)$endm"

# message = SHA-512(domain || the region without its signature field)
{ printf 'rustpatcher-go/v1 region\000'; printf '%s%s' "$head" "$tail" | xxd -r -p; } > "$tmp/pre"
openssl dgst -sha512 -binary "$tmp/pre" > "$tmp/msg"

# Ed25519 key from the raw seed: PKCS#8 DER prefix + seed.
printf '302e020100300506032b657004220420%s' "$seed" | xxd -r -p > "$tmp/key.der"
openssl pkey -inform DER -in "$tmp/key.der" -out "$tmp/key.pem"
openssl pkeyutl -sign -rawin -inkey "$tmp/key.pem" -in "$tmp/msg" -out "$tmp/sig"
printf '%s%s%s\n' "$head" "$(xxd -p "$tmp/sig" | tr -d '\n')" "$tail"
