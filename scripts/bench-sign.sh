#!/usr/bin/env bash
# bench-sign.sh [SIZE_MB] [RUNS] [FORMAT]
#
# Measures `rpsign sign --format FORMAT` (v1, the default, or v0) on a
# SIZE_MB (default 200) MB binary against `sha512sum` of the same file,
# alternating the two RUNS (default 7) times, and reports the medians, their
# ratio and rpsign's peak RSS. The file is examples/hello (with the test
# vector's public key linked in, as rpsign checks) with random bytes
# appended, so it holds one real region.
# Needs: go, sha512sum, GNU time (/usr/bin/time). Uses only local files.
set -euo pipefail
size_mb=${1:-200}
runs=${2:-7}
format=${3:-v1}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go build -C "$root" -o "$tmp/rpsign" ./cmd/rpsign
go build -C "$root" -o "$tmp/app" \
	-ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy" ./examples/hello
pad=$(( size_mb * 1000 * 1000 - $(stat -c %s "$tmp/app") ))
head -c "$pad" /dev/urandom >> "$tmp/app"
printf '5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o\n' > "$tmp/key"
chmod 600 "$tmp/key"

# Warm the page cache so both tools read from memory.
cat "$tmp/app" > /dev/null

measure() { # prints "seconds maxrss_kib"
	/usr/bin/time -f '%e %M' -o "$tmp/t" "$@" > /dev/null
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
"$tmp/rpsign" verify "$tmp/app" --pub axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy > /dev/null

sha=$(median < "$tmp/sha")
sign=$(median < "$tmp/sign")
rss=$(sort -n "$tmp/rss" | tail -1)
echo "file:            $size_mb MB ($(stat -c %s "$tmp/app") bytes), $runs alternating runs, format $format"
echo "sha512sum:       median ${sha}s"
echo "rpsign sign:     median ${sign}s"
awk -v a="$sign" -v b="$sha" 'BEGIN {printf "ratio:           %.2fx sha512sum\n", a/b}'
awk -v r="$rss" 'BEGIN {printf "rpsign peak RSS: %.1f MiB (max over runs)\n", r/1024}'
