#!/bin/sh
# bench/pack.sh: fl-pack on a 1 GiB model beside cat(1) in the same run:
# pack (import a safetensors file), verify, unpack (export), the same with
# --compress, and info. Medians of RUNS runs; files in the page cache.
# Usage: bench/pack.sh [RUNS]    (default 5; BENCH_DIR to place the files)
set -e
cd "$(dirname "$0")/.."
RUNS=${1:-5}
D=${BENCH_DIR:-/tmp/flkit-bench-pack}
P=bin/fl-pack
mkdir -p "$D"

# med CMD...: median wall seconds of RUNS runs (stdout of CMD discarded)
med() {
	/usr/bin/python3 - "$RUNS" "$@" <<'PY'
import subprocess, sys, time
runs = int(sys.argv[1]); cmd = sys.argv[2:]
ts = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    ts.append(time.perf_counter() - t)
ts.sort(); print("%.4f" % ts[len(ts) // 2])
PY
}

if [ ! -f "$D/m.blob" ]; then
	echo "making a 1 GiB model (16384x16384 f32) in $D" >&2
	$P init --arch 16384,16384 -o "$D/m.blob"
	$P export --to safetensors -o "$D/m.safetensors" "$D/m.blob"
	$P convert --compress -o "$D/mz.blob" "$D/m.blob"
fi
bytes=$(stat -c %s "$D/m.blob")
cat "$D/m.blob" "$D/m.safetensors" "$D/mz.blob" >/dev/null

mbs() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%8.0f", b / t / 1e6 }'; }
row() {	# row NAME SECONDS BASE
	printf '%-34s %8.3f s %s MB/s %6.2f x cat\n' "$1" "$2" "$(mbs "$2")" \
	    "$(awk -v a="$3" -v b="$2" 'BEGIN { print a / b }')"
}

t_cat=$(med sh -c "cat '$D/m.blob' > /dev/null")
t_cp=$(med sh -c "cat '$D/m.blob' > '$D/copy'")
printf '%-34s %8.3f s %s MB/s\n' "cat FILE > /dev/null" "$t_cat" "$(mbs "$t_cat")"
printf '%-34s %8.3f s %s MB/s\n' "cat FILE > FILE (write baseline)" "$t_cp" "$(mbs "$t_cp")"
row "fl-pack verify (raw)" "$(med $P verify -q "$D/m.blob")" "$t_cat"
row "fl-pack verify < pipe (raw)" "$(med sh -c "cat '$D/m.blob' | $P verify -q -")" "$t_cat"
row "fl-pack import (pack) > FILE" "$(med sh -c "$P import '$D/m.safetensors' > '$D/p.blob'")" "$t_cp"
row "fl-pack export (unpack) > FILE" "$(med sh -c "$P export --to safetensors '$D/m.blob' > '$D/u.st'")" "$t_cp"
row "fl-pack convert --compress > FILE" "$(med sh -c "$P convert --compress '$D/m.blob' > '$D/z.blob'")" "$t_cp"
row "fl-pack verify (zlib)" "$(med $P verify -q "$D/mz.blob")" "$t_cat"
row "fl-pack convert --no-compress" "$(med sh -c "$P convert --no-compress '$D/mz.blob' > '$D/r.blob'")" "$t_cp"
t_info=$(med $P info "$D/m.blob")
printf '%-34s %8.4f s (includes process start)\n' "fl-pack info" "$t_info"
rm -f "$D/copy" "$D/p.blob" "$D/u.st" "$D/z.blob" "$D/r.blob"
