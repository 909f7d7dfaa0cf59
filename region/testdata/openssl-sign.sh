#!/bin/sh
# openssl-sign.sh FILE OFFSET SEED_HEX VERSION
#
# An independent implementation of the rustpatcher signature, for the
# cross-check in openssl_test.go: it uses only POSIX tools and OpenSSL.
# Prints the Ed25519 signature in hex.
set -eu
file=$1 off=$2 seed=$3 version=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The file with the 176-byte region cut out.
head -c "$off" "$file" > "$tmp/cut"
tail -c +"$((off + 177))" "$file" >> "$tmp/cut"

# hash: the first 32 bytes of SHA-512 of it; size: its length, u64 LE.
openssl dgst -sha512 -binary "$tmp/cut" | head -c 32 > "$tmp/hash"
size=$(wc -c < "$tmp/cut")
le=""
i=0
while [ $i -lt 8 ]; do
	le="$le$(printf '%02x' $(( (size >> (8 * i)) & 255 )))"
	i=$((i + 1))
done

# message = SHA-512(version || hash || size_le)
{ printf '%s' "$version"; cat "$tmp/hash"; printf '%s' "$le" | xxd -r -p; } > "$tmp/pre"
openssl dgst -sha512 -binary "$tmp/pre" > "$tmp/msg"

# Ed25519 key from the raw seed: PKCS#8 DER prefix + seed.
printf '302e020100300506032b657004220420%s' "$seed" | xxd -r -p > "$tmp/key.der"
openssl pkey -inform DER -in "$tmp/key.der" -out "$tmp/key.pem"
openssl pkeyutl -sign -rawin -inkey "$tmp/key.pem" -in "$tmp/msg" -out "$tmp/sig"
xxd -p -c 64 "$tmp/sig"
