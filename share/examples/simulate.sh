#!/bin/sh
# simulate.sh: a federation of N workers on this one machine: Fashion-MNIST
# split non-IID among N fl-serve processes on loopback ports, then ROUNDS
# rounds of fl-fit --dataset | fl-avg -, each timed, with the global
# model's accuracy on the test set. Everything is stopped at the end.
#
#   simulate.sh [-n N] [-r ROUNDS] [-a ALPHA] [-p PARALLEL] [-d DIR]
#
# N 20, ROUNDS 3, ALPHA (Dirichlet) 0.5, PARALLEL (workers asked at once)
# fl-fit's default, DIR a temporary directory. Needs the programs on PATH
# (or run from the source tree after make) and Debian's
# dataset-fashion-mnist (or FL_DATASETS pointing at the IDX files).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
[ ! -x "$top/bin/fl-fit" ] || PATH="$top/bin:$PATH"
lib="$top/share/lib/workers.sh"
[ -f "$lib" ] || lib=/usr/local/share/flkit/lib/workers.sh
n=20 rounds=3 alpha=0.5 parallel= dir=
while getopts n:r:a:p:d: c; do
	case $c in
	n) n=$OPTARG ;;
	r) rounds=$OPTARG ;;
	a) alpha=$OPTARG ;;
	p) parallel=$OPTARG ;;
	d) dir=$OPTARG ;;
	*) echo "usage: simulate.sh [-n N] [-r ROUNDS] [-a ALPHA] [-p PARALLEL] [-d DIR]" >&2
	   exit 2 ;;
	esac
done
if [ -z "$dir" ]; then
	dir=$(mktemp -d "${TMPDIR:-/tmp}/flkit-sim.XXXXXX")
fi
mkdir -p "$dir"
cd "$dir"
. "$lib"

fashion_mnist test
fl-pack split -q --parts "$n" --dirichlet "$alpha" --seed 1 --prefix shard train.blob
fl-pack init --arch 784,128,relu,10 --seed 1 -o global.blob

workers_init "$dir"
names=
for i in $(seq "$n"); do
	name=$(printf 'site%02d' "$i")
	worker_start "$name" --dataset train="$dir/shard$i.blob"
	names="$names $name"
done
workers_wait
echo "$n workers up in $dir (Dirichlet $alpha)"

printf '%-6s %10s %9s\n' round seconds accuracy
for r in $(seq "$rounds"); do
	t0=$(date +%s.%N)
	fl-fit -q --dataset train --epochs 1 --batch 64 --lr 0.1 --seed "$r" \
	    ${parallel:+--parallel "$parallel"} $names < global.blob |
	    fl-avg -q - -o global.blob
	t1=$(date +%s.%N)
	acc=$(fl-fit --eval --json --local test.blob < global.blob |
	    sed 's/.*"accuracy":\([0-9.e+-]*\).*/\1/')
	awk -v r="$r" -v a="$t0" -v b="$t1" -v acc="$acc" \
	    'BEGIN { printf "%-6s %10.2f %8.1f%%\n", r, b - a, 100 * acc }'
done
