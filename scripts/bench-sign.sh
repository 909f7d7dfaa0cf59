#!/usr/bin/env bash
# bench-sign.sh [SIZE_MB] [RUNS] [TARGET] [FORMAT]
#
# Measures `rpsign sign --format FORMAT` (v1, the default, or v0) on a
# SIZE_MB (default 200) MB binary against
# `sha512sum` of the same file, alternating the two RUNS (default 7) times,
# and reports the medians, their ratio and rpsign's peak RSS.
#
# Without TARGET the file is examples/hello for this machine, with the
# test-vector public key linked in and random bytes appended, so it holds
# one real region. With TARGET (such as darwin/arm64) it is a program built
# for that target that embeds SIZE_MB of random bytes, so that the whole
# file is code: for darwin/arm64 the linker's ad hoc code signature covers
# every page, and signing also rewrites the hashes of the pages the region
# is in.
# Needs: go, sha512sum, GNU time (/usr/bin/time). Uses only local files.
set -euo pipefail
size_mb=${1:-200}
runs=${2:-7}
target=${3:-}
format=${4:-v1}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pub=axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy # docs/FORMAT.md's test vector
size=$(( size_mb * 1000 * 1000 ))

go build -C "$root" -o "$tmp/rpsign" ./cmd/rpsign
if [ -z "$target" ]; then
	go build -C "$root" -ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=$pub" -o "$tmp/app" ./examples/hello
	pad=$(( size - $(stat -c %s "$tmp/app") ))
	if [ "$pad" -lt 0 ]; then
		echo "bench-sign.sh: SIZE_MB $size_mb is smaller than hello itself ($(stat -c %s "$tmp/app") bytes)" >&2
		exit 2
	fi
	head -c "$pad" /dev/urandom >> "$tmp/app"
else
	# A module of its own, in a workspace with this one, that embeds the
	# blob and imports region (which holds the unsigned region).
	mkdir "$tmp/big"
	head -c $(( size - 2000000 )) /dev/urandom > "$tmp/big/blob"
	printf 'module bigapp\n\ngo 1.26\n' > "$tmp/big/go.mod"
	cat > "$tmp/big/main.go" <<EOF
package main

import (
	_ "embed"
	"fmt"

	"github.com/org/rustpatcher-go/region"
)

//go:embed blob
var blob []byte

const publicKey = "$pub"

func main() {
	in, _ := region.Current()
	fmt.Println(in.Version, len(blob), publicKey)
}
EOF
	(cd "$tmp" && go work init "$root" ./big)
	GOWORK="$tmp/go.work" GOOS=${target%/*} GOARCH=${target#*/} CGO_ENABLED=0 \
		go build -C "$tmp/big" -trimpath -ldflags "-s -w" -o "$tmp/app" .
fi
printf '5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o\n' > "$tmp/key"
chmod 600 "$tmp/key"

# Warm the page cache so both tools read from memory.
cat "$tmp/app" > /dev/null

measure() { # prints "seconds maxrss_kib"
	/usr/bin/time -f '%e %M' -o "$tmp/t" "$@" > /dev/null 2>&1
	cat "$tmp/t"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: > "$tmp/sha" ; : > "$tmp/sign" ; : > "$tmp/rss"
for i in $(seq "$runs"); do
	measure sha512sum "$tmp/app" | awk '{print $1}' >> "$tmp/sha"
	read -r secs rss < <(measure "$tmp/rpsign" sign "$tmp/app" --key-file "$tmp/key" --version "1.0.$i" --format "$format")
	echo "$secs" >> "$tmp/sign"
	echo "$rss" >> "$tmp/rss"
done
"$tmp/rpsign" verify "$tmp/app" --pub "$pub" > /dev/null

sha=$(median < "$tmp/sha")
sign=$(median < "$tmp/sign")
rss=$(sort -n "$tmp/rss" | tail -1)
echo "file:            $size_mb MB ($(stat -c %s "$tmp/app") bytes, $("$tmp/rpsign" inspect --json "$tmp/app" | sed -n 's/.*"executable":"\([^"]*\)".*"code_signature":\([a-z]*\).*/\1, code signature: \2/p')), $runs alternating runs"
echo "sha512sum:       median ${sha}s"
echo "rpsign sign:     median ${sign}s"
awk -v a="$sign" -v b="$sha" 'BEGIN {printf "ratio:           %.2fx sha512sum\n", a/b}'
awk -v r="$rss" 'BEGIN {printf "rpsign peak RSS: %.1f MiB (max over runs)\n", r/1024}'
