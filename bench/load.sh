#!/bin/sh
# bench/load.sh: CLIENTS concurrent clients x REQUESTS requests each on one
# fl-serve (HTTP/1.1, bench/load_client.py): stores, fetches
# (checked byte for byte), lists and deletes of small models. Reports errors,
# latency percentiles and fl-serve's RSS after request 1,000 and at the end;
# with RUNS > 1, each run on a fresh fl-serve and store, then the medians.
# Exits 1 on any error or when the RSS grew by more than 10% (in any run).
# Usage: bench/load.sh [CLIENTS [REQUESTS [RUNS]]]   (default 200 1000 1;
# BENCH_STORE)
set -e
cd "$(dirname "$0")/.."
CLIENTS=${1:-200}
REQUESTS=${2:-1000}
RUNS=${3:-1}
D=$(mktemp -d "${TMPDIR:-/tmp}/flkit-bench-load.XXXXXX")
S=${BENCH_STORE:-$D/store}
PATH=$PWD/bin:$PATH
srv=
trap '[ -z "$srv" ] || kill $srv 2>/dev/null; rm -rf "$D"' EXIT

# models of 1 KB to 70 KB
set --
for a in 16,8 64,32 128,64 256,64; do
	fl-pack init --arch "$a" --seed 7 -o "$D/m$a.blob"
	set -- "$@" "$D/m$a.blob"
done
echo "bench-token-0123456789 read write" >"$D/token"

r=1
while [ $r -le "$RUNS" ]; do
	rm -rf "$S"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	fl-serve -q --name bench --listen "127.0.0.1:$port" --store "$S" --token-file "$D/token" 3>&- &
	srv=$!
	i=0
	until curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "fl-serve did not start" >&2; exit 1; }
		sleep 0.1
	done
	echo "run $r of $RUNS: $CLIENTS clients x $REQUESTS requests on fl-serve (pid $srv, store $S)" >&2
	python3 bench/load_client.py "$port" bench-token-0123456789 "$srv" \
		"$CLIENTS" "$REQUESTS" "$@" >"$D/run.$r"
	kill $srv
	wait $srv || true
	srv=
	r=$((r + 1))
done

python3 - "$D"/run.* <<'PY'
import json, statistics, sys
runs = [json.load(open(f)) for f in sys.argv[1:]]
bad = False
for o in runs:
    grow = (o["rss_kib_at_end"] - o["rss_kib_at_1000"]) / o["rss_kib_at_1000"] * 100
    o["grow"] = grow
    bad |= bool(o["errors"]) or grow > 10
    print(json.dumps(o))
    print("%d requests, %d errors, %.1f s (%d/s); latency p50 %.2f ms, p99 %.2f ms, "
          "max %.1f ms" % (o["requests"], o["errors"], o["seconds"], o["requests_per_s"],
                           o["p50_ms"], o["p99_ms"], o["max_ms"]))
    print("p99 by operation (ms):", o["p99_ms_by_op"], " counts:", o["count_by_op"])
    print("fl-serve RSS: %.1f MiB after request 1,000, %.1f MiB at the end (%+.1f%%)" % (
          o["rss_kib_at_1000"] / 1024, o["rss_kib_at_end"] / 1024, grow))
    print("fl-serve RSS (MiB) after each 10,000 requests:",
          " ".join("%.1f" % (k / 1024) for _, k in o["rss_kib_series"]))
if len(runs) > 1:
    m = lambda k: statistics.median(o[k] for o in runs)
    print("medians of %d runs: %g errors, %.0f requests/s, p50 %.2f ms, p99 %.2f ms, "
          "RSS growth %+.1f%% (each run: errors %s, p99 %s ms, RSS growth %s %%)" % (
          len(runs), m("errors"), m("requests_per_s"), m("p50_ms"), m("p99_ms"), m("grow"),
          [o["errors"] for o in runs], ["%.1f" % o["p99_ms"] for o in runs],
          ["%+.1f" % o["grow"] for o in runs]))
sys.exit(1 if bad else 0)
PY
