#!/bin/sh
# bench/store_scale.sh: does a worker slow down as its store fills up?
# For stores of N objects (1 KB models, put into STORE/objects/ by hand,
# as a worker finds them after a restart), on tmpfs:
#   start      seconds from fl-serve's start to its first health reply
#              (it reads every object's header to index it)
#   RSS        fl-serve's RSS then
#   store+del  POST /v1/objects then DELETE of what was stored, 16 clients
#              (wrk, bench/postdel.lua), pairs per second, median of RUNS
#   page       GET /v1/objects (its first page), ms, median of 5
#   list all   fl-get --list --json: every object, s; and fl-server's peak
#              RSS meanwhile
# Usage: bench/store_scale.sh [RUNS] [N...]   (default 3; 1000 100000
# 450000; BIN: the programs to measure, default bin/; BENCH_STORE)
# Needs wrk (share/install-deps bench).
set -e
cd "$(dirname "$0")/.."
top=$PWD
RUNS=${1:-3}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- 1000 100000 450000
BIN=${BIN:-$top/bin}
S=${BENCH_STORE:-/dev/shm/flkit-bench-scale}
D=$(mktemp -d "${TMPDIR:-/tmp}/flkit-bench-scale.XXXXXX")
command -v wrk >/dev/null || { echo "bench/store_scale.sh: needs wrk (share/install-deps bench)" >&2; exit 1; }
srv=
trap '[ -z "$srv" ] || kill $srv 2>/dev/null; rm -rf "$D" "$S"' EXIT
tok=bench-token-0123456789
echo "$tok read write" >"$D/token"
"$BIN/fl-pack" init --arch 8,18 -o "$D/small.blob"	# 1024 bytes

median() {
	sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
now() { date +%s%N; }

printf '%9s %8s %8s %11s %9s %9s %10s\n' objects start RSS store+del/s page \
    "list all" "RSS peak"
for n in "$@"; do
	rm -rf "$S"
	mkdir -p "$S/objects"
	python3 - "$D/small.blob" "$S/objects" "$n" <<'PY'
import os, secrets, sys
blob = open(sys.argv[1], "rb").read()
for _ in range(int(sys.argv[3])):
    with open(os.path.join(sys.argv[2], secrets.token_hex(8)), "wb") as f:
        f.write(blob)
PY
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	url=http://127.0.0.1:$port
	t0=$(now)
	"$BIN/fl-serve" -q --name scale --listen "127.0.0.1:$port" --store "$S" \
	    --token-file "$D/token" 3>&- 2>"$D/serve.log" &
	srv=$!
	until curl -sf "$url/v1/health" >/dev/null; do
		kill -0 $srv || { cat "$D/serve.log" >&2; exit 1; }
		sleep 0.01
	done
	t1=$(now)
	rss0=$(rss $srv)
	: >"$D/pd"
	for r in $(seq "$RUNS"); do
		wrk -t2 -c16 -d5s -s bench/postdel.lua "$url" -- "$D/small.blob" "$tok" >"$D/wrk"
		if grep -q 'Non-2xx' "$D/wrk"; then cat "$D/wrk" >&2; exit 1; fi
		awk '/^Requests\/sec/ { print $2 / 2 }' "$D/wrk" >>"$D/pd"
	done
	: >"$D/page"
	for r in 1 2 3 4 5; do
		a=$(now)
		curl -sf -H "Authorization: Bearer $tok" -o /dev/null "$url/v1/objects"
		b=$(now)
		echo $(((b - a) / 1000)) >>"$D/page"
	done
	echo "scale $url $D/token" >"$D/workers"
	rm -f "$D/listed"
	( peak=0
	  while kill -0 $srv 2>/dev/null && [ ! -f "$D/listed" ]; do
		v=$(rss $srv); [ "$v" -gt "$peak" ] && peak=$v
		echo $peak >"$D/peak"
		sleep 0.02
	  done ) &
	mon=$!
	a=$(now)
	FL_WORKERS=$D/workers "$BIN/fl-get" --list --json scale >"$D/list.json"
	b=$(now)
	touch "$D/listed"
	wait $mon
	listed=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["objects"]))' "$D/list.json")
	[ "$listed" -ge "$n" ] || { echo "listed $listed of $n objects" >&2; exit 1; }
	kill $srv
	wait $srv || true
	srv=
	awk -v n="$n" -v st="$(((t1 - t0) / 1000000))" -v rss="$rss0" \
	    -v pd="$(median <"$D/pd")" -v page="$(median <"$D/page")" \
	    -v all="$(((b - a) / 1000000))" -v peak="$(cat "$D/peak")" 'BEGIN {
	    printf "%9d %7.2fs %5.1fMiB %11.0f %7.1fms %8.2fs %7.1fMiB\n", n, st / 1000,
	    rss / 1024, pd, page / 1000, all / 1000, peak / 1024 }'
done
echo "(store+del/s: median of $RUNS wrk runs of 5 s; page: median of 5)"
