#!/bin/sh
# bench/avg.sh: fl-avg against numpy's weighted average (as Flower computes
# it) and against cat, on N inputs of P float32 parameters in the page cache.
# Usage: bench/avg.sh [N [PARAMS [RUNS]]]   (default 8 25000000 5)
# fl-avg writes with > FILE (as np.save, no fsync; -o adds an fsync).
# Needs /usr/bin/python3 with python3-numpy, /usr/bin/time and cc.
set -e
cd "$(dirname "$0")/.."
N=${1:-8}
P=${2:-25000000}
RUNS=${3:-5}
D=${BENCH_DIR:-/tmp/flkit-bench-avg}
AVG=${FL_AVG:-bin/fl-avg}
mkdir -p "$D"
if [ ! -f "$D/in$N.blob" ] || [ "$(cat "$D/params" 2>/dev/null)" != "$N $P" ]; then
	echo "generating $N inputs of $P parameters in $D" >&2
	rm -f "$D"/in*.blob "$D"/in*.npy
	/usr/bin/python3 bench/avg_numpy.py gen "$D" "$N" "$P"
	echo "$N $P" >"$D/params"
fi
blobs=$(i=1; while [ $i -le "$N" ]; do printf '%s ' "$D/in$i.blob"; i=$((i + 1)); done)
npys=$(i=1; while [ $i -le "$N" ]; do printf '%s ' "$D/in$i.npy"; i=$((i + 1)); done)
cat $blobs $npys >/dev/null	# into the page cache
cc -O2 -pthread -o "$D/avg_floor" bench/avg_floor.c

# run NAME CMD...: RUNS timings; prints the median seconds and peak RSS (KiB)
run() {
	name=$1
	shift
	: >"$D/$name.times"
	i=0
	while [ $i -lt "$RUNS" ]; do
		/usr/bin/time -f '%e %M' -o "$D/$name.t" "$@"
		cat "$D/$name.t" >>"$D/$name.times"
		rm -f "$D/out.blob" "$D/out.npy"
		i=$((i + 1))
	done
	sort -n "$D/$name.times" | awk -v n="$RUNS" 'NR == int((n + 1) / 2) { print $1, $2 }'
}

# Finer timing than /usr/bin/time's 10 ms: wall clock in python. The last
# run's output is removed before the clock starts: truncating it inside the
# timed command would wait for its writeback to the disk, which belongs to
# neither tool (both fl-avg and numpy get the same treatment).
timeit() {
	/usr/bin/python3 - "$RUNS" "$D" "$@" <<'PY'
import os, subprocess, sys, time
runs = int(sys.argv[1]); d = sys.argv[2]; cmd = sys.argv[3:]
ts = []
for _ in range(runs):
    for f in ("out.blob", "out.npy"):
        if os.path.exists(os.path.join(d, f)):
            os.unlink(os.path.join(d, f))
    t = time.perf_counter(); subprocess.run(cmd, check=True); ts.append(time.perf_counter() - t)
ts.sort(); print("%.3f" % ts[len(ts) // 2])
PY
}

inbytes=$(cat $blobs | wc -c)
model=$(wc -c <"$D/in1.blob")
t_cat=$(timeit sh -c "cat $blobs >/dev/null")
t_avg=$(timeit sh -c "$AVG $blobs >$D/out.blob")
t_avg1=$(timeit sh -c "$AVG --threads 1 $blobs >$D/out.blob")
t_med=$(timeit sh -c "$AVG --method median $blobs >$D/out.blob")
# The server optimizer and clipping take the base (here the first input).
t_adam=$(timeit sh -c "rm -f $D/st.blob; $AVG --base $D/in1.blob --server-opt adam \
    --server-lr 0.01 --state $D/st.blob $blobs >$D/out.blob")
t_clip=$(timeit sh -c "$AVG --base $D/in1.blob --clip 100 $blobs >$D/out.blob")
t_floor=$(timeit sh -c "$D/avg_floor $D/out.blob $blobs")
t_np=$(timeit sh -c "/usr/bin/python3 bench/avg_numpy.py avg $D/out.npy $npys")
rss_avg=$(run fl-avg $AVG -o "$D/out.blob" $blobs | cut -d' ' -f2)
rss_med=$(run fl-avg-median $AVG --method median -o "$D/out.blob" $blobs | cut -d' ' -f2)
rss_adam=$(run fl-avg-adam sh -c "rm -f $D/st.blob; exec $AVG --base $D/in1.blob \
    --server-opt adam --server-lr 0.01 --state $D/st.blob -o $D/out.blob $blobs" | cut -d' ' -f2)
rss_clip=$(run fl-avg-clip $AVG --base "$D/in1.blob" --clip 100 -o "$D/out.blob" $blobs |
    cut -d' ' -f2)
rss_np=$(run numpy /usr/bin/python3 bench/avg_numpy.py avg "$D/out.npy" $npys | cut -d' ' -f2)
# The memory-bandwidth bound: one vectorised pass reading the inputs and
# writing the output, at the rate a large memcpy reaches here (glibc copies
# that large with non-temporal stores, so read + write bytes are what move).
# It leaves out what the kernel does to hand page-cache pages to a process
# and to take 100 MB of new ones: avg_floor measures that floor (mapping,
# one load per cache line, the output written, no arithmetic, 2 threads).
bw=$(/usr/bin/python3 -c '
import numpy as np, time
a = np.ones(100_000_000, np.float32); b = np.empty_like(a); ts = []
for _ in range(5):
    t = time.perf_counter(); np.copyto(b, a); ts.append(time.perf_counter() - t)
print("%.2f" % (2 * a.nbytes / min(ts) / 1e9))')
awk -v n="$N" -v p="$P" -v in_="$inbytes" -v model="$model" -v cat="$t_cat" \
    -v avg="$t_avg" -v avg1="$t_avg1" -v med="$t_med" -v np_="$t_np" -v ra="$rss_avg" \
    -v rm="$rss_med" -v rn="$rss_np" -v bw="$bw" -v adam="$t_adam" -v clip="$t_clip" \
    -v floor="$t_floor" -v radam="$rss_adam" -v rclip="$rss_clip" 'BEGIN {
	bound = (in_ + model) / (bw * 1e9)
	printf "inputs: %d x %d f32 (%.0f MB each), median of runs\n", n, p, model / 1e6
	printf "%-28s %8s %10s %12s\n", "", "seconds", "GB/s in", "peak RSS MiB"
	printf "%-28s %8.3f %10.2f %12s\n", "cat >/dev/null", cat, in_ / cat / 1e9, "-"
	printf "%-28s %8.3f %10.2f %12s\n", "page-cache floor (no math)", floor, in_ / floor / 1e9, "-"
	printf "%-28s %8.3f %10.2f %12s\n", "fl-avg --threads 1", avg1, in_ / avg1 / 1e9, "-"
	printf "%-28s %8.3f %10.2f %12.0f\n", "fl-avg (fedavg)", avg, in_ / avg / 1e9, ra / 1024
	printf "%-28s %8.3f %10.2f %12.0f\n", "fl-avg --method median", med, in_ / med / 1e9, rm / 1024
	printf "%-28s %8.3f %10.2f %12.0f\n", "fl-avg --server-opt adam", adam, in_ / adam / 1e9, radam / 1024
	printf "%-28s %8.3f %10.2f %12.0f\n", "fl-avg --clip (2 passes)", clip, in_ / clip / 1e9, rclip / 1024
	printf "%-28s %8.3f %10.2f %12.0f\n", "numpy (python3)", np_, in_ / np_ / 1e9, rn / 1024
	printf "memory bandwidth (copy, read+write): %.1f GB/s; bound for fedavg: %.3f s\n", bw, bound
	printf "fl-avg vs numpy: %.1fx faster (goal >= 5x)\n", np_ / avg
	printf "fl-avg vs bandwidth bound: %.0f%% (goal >= 60%%)\n", 100 * bound / avg
	printf "fl-avg vs page-cache floor: %.0f%%\n", 100 * floor / avg
	printf "peak RSS / one model: fedavg %.2fx, median %.2fx, adam %.2fx, clip %.2fx (goal < 3x)\n",
	    ra * 1024 / model, rm * 1024 / model, radam * 1024 / model, rclip * 1024 / model
}'
