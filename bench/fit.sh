#!/bin/sh
# bench/fit.sh: fl-fit --local against PyTorch training the same MLP
# (784,128,relu,10, SGD lr 0.1, batch 64) from the same initial weights on
# Fashion-MNIST packed by fl-pack dataset --idx --normalize: samples/s of one
# epoch's training loop (loading excluded for both) at 1 and 2 threads,
# median of RUNS, the ratio of the best settings, and test accuracy after 1
# and 5 epochs.
# Threads: fl-fit --threads N splits each batch between N threads (one
# OpenBLAS thread each); fit_torch.py --threads N is torch.set_num_threads.
# Runs alternate between the two so that both meet the same load. On a busy
# machine wall-clock rates swing; samples per CPU second are steadier, and
# are printed too (for 2 threads they show what splitting costs).
# Usage: bench/fit.sh [RUNS]   (default 3)
# Needs /usr/bin/python3 with python3-torch and the Fashion-MNIST files in
# $FASHION_MNIST (default /usr/share/datasets/fashion-mnist).
set -e
cd "$(dirname "$0")/.."
RUNS=${1:-3}
D=${BENCH_DIR:-/tmp/flkit-bench-fit}
SRC=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
FIT=${FL_FIT:-bin/fl-fit}
PACK=${FL_PACK:-bin/fl-pack}
mkdir -p "$D"
if [ ! -f "$D/train.blob" ] || [ ! -f "$D/test.blob" ]; then
	echo "packing Fashion-MNIST from $SRC into $D" >&2
	$PACK dataset --idx "$SRC/train-images-idx3-ubyte.gz" \
	    "$SRC/train-labels-idx1-ubyte.gz" --normalize -o "$D/train.blob"
	$PACK dataset --idx "$SRC/t10k-images-idx3-ubyte.gz" \
	    "$SRC/t10k-labels-idx1-ubyte.gz" --normalize -o "$D/test.blob"
fi
$PACK init --arch 784,128,relu,10 --seed 1 -o "$D/init.blob"
cat "$D/train.blob" "$D/test.blob" >/dev/null	# into the page cache

# flkit THREADS: "samples/s cpu-seconds" of one epoch, from fl-fit -v.
flkit() {
	$FIT -v --local "$D/train.blob" --lr 0.1 --batch 64 --threads "$1" \
	    <"$D/init.blob" 2>&1 >/dev/null |
	    sed -n 's/.* examples, .*(\([0-9.]*\) s CPU), \([0-9]*\) samples\/s$/\2 \1/p'
}

# torch THREADS SEED: the same from bench/fit_torch.py.
torch() {
	/usr/bin/python3 bench/fit_torch.py --threads "$1" --seed "$2" \
	    "$D/init.blob" "$D/train.blob" "$D/test.blob" |
	    sed 's/.*"samples_per_s": \([0-9]*\).*"cpu_seconds": \([0-9.]*\).*/\1 \2/'
}

: >"$D/runs"
i=0
while [ $i -lt "$RUNS" ]; do
	echo "flkit1 $(flkit 1)" >>"$D/runs"
	echo "torch1 $(torch 1 $i)" >>"$D/runs"
	echo "flkit2 $(flkit 2)" >>"$D/runs"
	echo "torch2 $(torch 2 $i)" >>"$D/runs"
	i=$((i + 1))
done

acc() {	# acc EPOCHS: flkit's test accuracy at --threads 2
	$FIT --local "$D/train.blob" --lr 0.1 --batch 64 --epochs "$1" --threads 2 \
	    <"$D/init.blob" | $FIT --eval --json --local "$D/test.blob" |
	    sed 's/.*"accuracy":\([0-9.]*\).*/\1/'
}

tacc() {	# tacc EPOCHS: PyTorch's
	/usr/bin/python3 bench/fit_torch.py --threads 1 --epochs "$1" \
	    "$D/init.blob" "$D/train.blob" "$D/test.blob" |
	    sed 's/.*"accuracy": \([0-9.]*\).*/\1/'
}

a1=$(acc 1)
a5=$(acc 5)
b1=$(tacc 1)
b5=$(tacc 5)
awk -v a1="$a1" -v a5="$a5" -v b1="$b1" -v b5="$b5" -v runs="$RUNS" '
function median(k,   n, i, j, t, v) {
	n = split(rate[k], v, " ")
	for (i = 2; i <= n; i++)	# insertion sort
		for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return v[int((n + 1) / 2)]
}
{ rate[$1] = rate[$1] " " $2; cpu[$1] = cpu[$1] " " (60000 / $3) }
END {
	for (k in cpu) { rate[k "c"] = cpu[k] }
	f1 = median("flkit1"); f2 = median("flkit2")
	t1 = median("torch1"); t2 = median("torch2")
	fc = median("flkit1c"); tc = median("torch1c")
	fc2 = median("flkit2c"); tc2 = median("torch2c")
	printf "784,128,relu,10 on Fashion-MNIST, SGD lr 0.1, batch 64, median of %d\n", runs
	printf "%-8s %12s %12s %12s %12s %9s %9s\n", "", "1 thread/s",
	    "2 threads/s", "1 thr/CPU-s", "2 thr/CPU-s", "acc 1 ep", "acc 5 ep"
	printf "%-8s %12.0f %12.0f %12.0f %12.0f %9.4f %9.4f\n", "flkit", f1, f2,
	    fc, fc2, a1, a5
	printf "%-8s %12.0f %12.0f %12.0f %12.0f %9.4f %9.4f\n", "pytorch", t1, t2,
	    tc, tc2, b1, b5
	fb = f1 > f2 ? f1 : f2
	tb = t1 > t2 ? t1 : t2
	printf "ratio, best flkit / best pytorch: %.2fx (per CPU second, 1 thread: %.2fx)\n",
	    fb / tb, fc / tc
}' "$D/runs"
