#!/bin/sh
# bench/fit.sh: fl-fit --local against PyTorch training the same MLP
# (784,128,relu,10, SGD lr 0.1, batch 64) from the same initial weights on
# Fashion-MNIST packed by fl-pack dataset --idx --normalize: samples/s of the
# training loop at 1 and 2 threads (median of RUNS), the ratio of the best
# settings, and test accuracy after 1 and 5 epochs.
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

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# flkit: the loop's rate as fl-fit -v reports it (loading excluded, as for
# PyTorch below).
flkit() {	# flkit THREADS
	i=0
	while [ $i -lt "$RUNS" ]; do
		$FIT -v --local "$D/train.blob" --lr 0.1 --batch 64 --threads "$1" \
		    <"$D/init.blob" 2>&1 >/dev/null |
		    sed -n 's/.* examples, .* \([0-9][0-9]*\) samples\/s$/\1/p'
		i=$((i + 1))
	done | median
}

torch() {	# torch THREADS
	i=0
	while [ $i -lt "$RUNS" ]; do
		/usr/bin/python3 bench/fit_torch.py --threads "$1" --seed $i \
		    "$D/init.blob" "$D/train.blob" "$D/test.blob" |
		    sed 's/.*"samples_per_s": \([0-9]*\).*/\1/'
		i=$((i + 1))
	done | median
}

acc() {	# acc EPOCHS: flkit's test accuracy
	$FIT --local "$D/train.blob" --lr 0.1 --batch 64 --epochs "$1" \
	    <"$D/init.blob" | $FIT --eval --json --local "$D/test.blob" |
	    sed 's/.*"accuracy":\([0-9.]*\).*/\1/'
}

tacc() {	# tacc EPOCHS: PyTorch's
	/usr/bin/python3 bench/fit_torch.py --threads 1 --epochs "$1" \
	    "$D/init.blob" "$D/train.blob" "$D/test.blob" |
	    sed 's/.*"accuracy": \([0-9.]*\).*/\1/'
}

f1=$(flkit 1)
f2=$(flkit 2)
t1=$(torch 1)
t2=$(torch 2)
a1=$(acc 1)
a5=$(acc 5)
b1=$(tacc 1)
b5=$(tacc 5)
awk -v f1="$f1" -v f2="$f2" -v t1="$t1" -v t2="$t2" -v a1="$a1" -v a5="$a5" \
    -v b1="$b1" -v b5="$b5" -v runs="$RUNS" 'BEGIN {
	printf "784,128,relu,10 on Fashion-MNIST, SGD lr 0.1, batch 64, median of %d\n", runs
	printf "%-10s %14s %14s %12s %12s\n", "", "1 thread /s", "2 threads /s", "acc 1 ep", "acc 5 ep"
	printf "%-10s %14.0f %14.0f %12.4f %12.4f\n", "flkit", f1, f2, a1, a5
	printf "%-10s %14.0f %14.0f %12.4f %12.4f\n", "pytorch", t1, t2, b1, b5
	fb = f1 > f2 ? f1 : f2
	tb = t1 > t2 ? t1 : t2
	printf "ratio (best flkit / best pytorch): %.2fx\n", fb / tb
}'
