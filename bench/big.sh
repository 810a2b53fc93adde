#!/bin/sh
# bench/big.sh: a 4 GiB blob goes into fl-serve with fl-send and comes back
# with fl-get, compared byte for byte, and neither side holds it whole: prints
# the time and the peak RSS of fl-send, fl-get and fl-serve, and fails when
# any of them passes LIMIT MiB (default 256). Needs about 9 GiB free under
# BENCH_DIR (the blob and the store's copy; both removed at the end).
# Usage: bench/big.sh [GIB]   (default 4; BENCH_DIR, default
# /tmp/flkit-bench-big; BENCH_STORE, default BENCH_DIR/store; LIMIT)
set -e
cd "$(dirname "$0")/.."
GIB=${1:-4}
D=${BENCH_DIR:-/tmp/flkit-bench-big}
S=${BENCH_STORE:-$D/store}
LIMIT=${LIMIT:-256}
PATH=$PWD/bin:$PATH
mkdir -p "$D"
trap 'kill $srv 2>/dev/null; rm -rf "$D"' EXIT

# One Linear layer of n x n f32 weights: 4 n^2 bytes.
n=$(awk -v g="$GIB" 'BEGIN { printf "%d", sqrt(g * 2^30 / 4) }')
echo "making a ${GIB} GiB model (${n}x${n} f32) in $D" >&2
fl-pack init --arch "$n,$n" -o "$D/big.blob"
bytes=$(stat -c %s "$D/big.blob")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "bench-token-0123456789 read write" >"$D/token"
fl-serve -q --name big --listen "127.0.0.1:$port" --store "$S" --token-file "$D/token" 3>&- &
srv=$!
printf 'big http://127.0.0.1:%s token\n' "$port" >"$D/workers"
export FL_WORKERS="$D/workers"
i=0
until curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "fl-serve did not start" >&2; exit 1; }
	sleep 0.1
done

# timed NAME CMD: run CMD under time(1); print its wall time and peak RSS
timed() {
	name=$1
	shift
	/usr/bin/time -f '%e %M' -o "$D/time" "$@"
	read -r t kb <"$D/time"
	mib=$((kb / 1024))
	printf '%-30s %8.1f s %6.0f MB/s   peak RSS %5d MiB\n' "$name" "$t" \
	    "$(awk -v b="$bytes" -v t="$t" 'BEGIN { print b / t / 1e6 }')" "$mib"
	[ "$mib" -le "$LIMIT" ] || { echo "$name: peak RSS over $LIMIT MiB" >&2; exit 1; }
}

printf '%s bytes, store in %s\n' "$bytes" "$S"
timed "fl-send FILE" sh -c "exec fl-send big '$D/big.blob' > '$D/ptr'"
rm -f "$D/time"
timed "fl-get | cmp - FILE" sh -c "fl-get \$(cat '$D/ptr') | cmp - '$D/big.blob'"
srss=$(awk '/^VmHWM/ { printf "%d", $2 / 1024 }' /proc/$srv/status)
printf '%-30s %s MiB\n' "fl-serve peak RSS" "$srss"
[ "$srss" -le "$LIMIT" ] || { echo "fl-serve: peak RSS over $LIMIT MiB" >&2; exit 1; }
fl-get --delete "$(cat "$D/ptr")"
