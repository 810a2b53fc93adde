#!/bin/sh
# bench/requests.sh: requests/s and latency for 1 KB objects, 16 clients at
# once (wrk(1), keep-alive connections) against one fl-serve: storing
# (POST /v1/objects, each a new object: validated, fsynced, renamed) and
# fetching (GET /v1/objects/ID). Medians of RUNS runs of SECS seconds.
# Usage: bench/requests.sh [RUNS] [SECS]   (default 3 and 10; BENCH_DIR,
# BENCH_STORE: the store, default on tmpfs; CLIENTS, default 16)
# Needs wrk (share/install-deps bench).
set -e
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-10}
C=${CLIENTS:-16}
D=${BENCH_DIR:-/tmp/flkit-bench-requests}
S=${BENCH_STORE:-/dev/shm/flkit-bench-requests-store}
command -v wrk >/dev/null || { echo "bench/requests.sh: needs wrk (share/install-deps bench)" >&2; exit 1; }
mkdir -p "$D"
PATH=$PWD/bin:$PATH

fl-pack init --arch 8,18 -o "$D/small.blob"	# 1024 bytes
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tok=bench-token-0123456789
echo "$tok read write" >"$D/token"
rm -rf "$S"
fl-serve -q --name bench --listen "127.0.0.1:$port" --store "$S" --token-file "$D/token" \
    3>&- 2>"$D/serve.log" &
srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$S"' EXIT
i=0
until curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "fl-serve did not start" >&2; exit 1; }
	sleep 0.1
done
url=http://127.0.0.1:$port/v1/objects
id=$(curl -sf -H "Authorization: Bearer $tok" -H 'Accept: application/json' \
    --data-binary @"$D/small.blob" "$url" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# one NAME URL [BODY]: RUNS wrk runs; prints the medians
one() {
	name=$1 u=$2 body=${3:-}
	r=1
	while [ $r -le "$RUNS" ]; do
		wrk -t2 -c"$C" -d"${SECS}s" --latency -s bench/requests.lua "$u" -- "$body" "$tok" \
		    >"$D/wrk.$r"
		if ! kill -0 $srv 2>/dev/null; then
			echo "bench/requests.sh: fl-serve died:" >&2
			cat "$D/serve.log" >&2
			exit 1
		fi
		if grep -q 'Non-2xx' "$D/wrk.$r"; then
			echo "bench/requests.sh: $name: some requests failed:" >&2
			cat "$D/wrk.$r" >&2
			exit 1
		fi
		r=$((r + 1))
	done
	python3 - "$name" "$D"/wrk.* <<'PY'
import re, statistics, sys
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
rps, p50, p99 = [], [], []
for f in sys.argv[2:]:
    t = open(f).read()
    rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)))
    p50.append(ms(re.search(r"\s50%\s+(\S+)", t).group(1)))
    p99.append(ms(re.search(r"\s99%\s+(\S+)", t).group(1)))
m = statistics.median
print("%-28s %9.0f req/s   p50 %7.2f ms   p99 %7.2f ms" % (sys.argv[1], m(rps), m(p50), m(p99)))
PY
	rm -f "$D"/wrk.*
}

printf '1 KB objects, %s clients, medians of %s runs of %s s; store in %s\n' "$C" "$RUNS" "$SECS" "$S"
one "store (POST /v1/objects)" "$url" "$D/small.blob"
one "fetch (GET /v1/objects/ID)" "$url/$id"
printf '%-28s %s\n' "fl-serve peak RSS" \
    "$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' /proc/$srv/status)"
