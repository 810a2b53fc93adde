#!/bin/bash
# bench/round.sh: what a federated round costs beyond its training.
#
#   bench/round.sh [RUNS]    (default 5; medians are printed)
#   EPOCHS=3 bench/round.sh  (each fit trains 3 epochs: the overhead is
#                            much the same, the training three times more)
#
# For 3 and for 20 workers (fl-serve on loopback, Fashion-MNIST split
# non-IID among them, 1 epoch each), a round is
#     fl-fit --dataset train W1..WN < global.blob | fl-avg - > next.blob
# and is set against the very same work done as plain local processes, with
# all of them at once, as the round asks all workers at once (--parallel N):
#     fl-fit --local shardI.blob --threads 1 (xargs -P N) ; fl-avg shards
# The difference is flkit's overhead: uploads, storing, fetching,
# orchestration. The second baseline is the round's critical path in
# training alone: the longest fit of the round as the workers timed it
# (wall clock inside fl_fit); round minus that bounds the overhead from
# above, as every other fit ran meanwhile.
# Last, fl-fit alone against a refused connection: its own start and exit,
# which every round pays whatever flkit does in between.
# Needs Debian's dataset-fashion-mnist and /usr/bin/time.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
PATH="$top/bin:$PATH"
RUNS=${1:-5}
D=${BENCH_DIR:-/tmp/flkit-bench-round}
FIT="--epochs ${EPOCHS:-1} --batch 64 --lr 0.1 --seed 1"
mkdir -p "$D"
cd "$D"
. "$top/share/lib/workers.sh"

fashion_mnist
fl-pack init --arch 784,128,relu,10 --seed 1 -o global.blob

# median of the numbers on standard input
median() {
	sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# seconds CMD...: wall time of CMD, to the microsecond (bash's clock: a
# date(1) on each side would add its own start, a millisecond or two)
seconds() {
	local t0 t1
	t0=$EPOCHREALTIME
	"$@"
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}

# start_workers PREFIX SHARD [BASE]: n workers PREFIX1.., dataset
# train=SHARD1.blob.., under BASE (default $D)
start_workers() {
	workers_init "${3:-$D}/$1$n"
	names=
	for i in $(seq "$n"); do
		worker_start "$1$i" --dataset train="$2$i.blob"
		names="$names $1$i"
	done
	workers_wait
}

remote_round() {
	fl-fit -q --dataset train --parallel "$n" $FIT $names < global.blob |
	    fl-avg -q - > next.blob
}

local_round() {
	rm -rf fits
	mkdir fits
	for i in $(seq "$n"); do echo "$i"; done |
	    xargs -P "$par" -I{} sh -c \
	    "fl-fit -q --local shard{}.blob --threads 1 $FIT < global.blob > fits/{}.blob"
	fl-avg -q fits/*.blob > next.blob
}

printf '%-8s %9s %9s %9s %9s %9s %9s\n' workers round local "ovh/local" \
    "longest" "ovh/fit" "sum(fits)"
for n in 3 20; do
	par=$n
	fl-pack split -q --parts "$n" --dirichlet 0.5 --seed 1 --prefix shard train.blob
	start_workers w "$D/shard"
	remote_round	# warm up: page cache, connections
	local_round
	: > remote.t
	: > local.t
	for r in $(seq "$RUNS"); do	# alternated, so that load hits both
		seconds remote_round >> remote.t
		seconds local_round >> local.t
	done
	workers_stop
	# the workers' fit seconds: n lines a round, rounds one after another
	for w in $names; do
		sed -n 's/.*fitted .*, \([0-9.]*\) s$/\1/p' "$D/w$n/$w.log" |
		    awk '{ print NR, $1 }'
	done | awk -v skip=1 '$1 > skip { if ($2 > m[$1]) m[$1] = $2; s[$1] += $2 }
	    END { for (r in m) print m[r], s[r] }' > fits.t
	rt=$(median < remote.t)
	lt=$(median < local.t)
	longest=$(awk '{ print $1 }' fits.t | median)
	sum=$(awk '{ print $2 }' fits.t | median)
	awk -v n="$n" -v rt="$rt" -v lt="$lt" -v lf="$longest" -v sf="$sum" 'BEGIN {
	    printf "%-8s %8.3fs %8.3fs %8.1f%% %8.3fs %8.1f%% %8.3fs\n", n, rt, lt,
	    100 * (rt - lt) / rt, lf, 100 * (rt - lf) / rt, sf }'
done

# The fixed cost: the same rounds on shards of 67 samples (a fit of about
# a millisecond), so that what is left is process starts, transfers,
# storing (fsync), orchestration and fl-avg. Then where it goes, each
# alternated round by round with it: the same on workers whose stores are
# on tmpfs (no fsync: the difference is durable storing), and fl-fit alone
# with its models going to /dev/null (the difference is fl-avg's part
# after the last model came).
mkdir -p tiny
[ -f tiny/t20.blob ] || fl-pack split -q --parts 900 --seed 1 --prefix tiny/t train.blob
fit_only() {
	fl-fit -q --dataset train --parallel "$n" $FIT $names < global.blob > /dev/null
}
T=${BENCH_TMPFS:-/dev/shm/flkit-bench-round}
printf '%-8s %9s %9s %9s %9s\n' workers "fixed" "tmpfs" "storing" "fl-avg"
for n in 3 20; do
	# two sets of workers n1.., each named in its own workers file
	start_workers n "$D/tiny/t" "$T"
	on_tmpfs=$FL_WORKERS
	tmpfs_pids=$wk_pids
	start_workers n "$D/tiny/t"
	on_disk=$FL_WORKERS
	wk_pids="$wk_pids $tmpfs_pids"
	remote_round
	FL_WORKERS=$on_tmpfs remote_round
	: > null.t
	: > tmpfs.t
	: > fitonly.t
	for r in $(seq $((RUNS * 4))); do
		seconds remote_round >> null.t
		FL_WORKERS=$on_tmpfs seconds remote_round >> tmpfs.t
		seconds fit_only >> fitonly.t
	done
	FL_WORKERS=$on_disk
	workers_stop
	rm -rf "$T"
	awk -v n="$n" -v a="$(median < null.t)" -v t="$(median < tmpfs.t)" \
	    -v f="$(median < fitonly.t)" 'BEGIN {
	    printf "%-8s %6.1f ms %6.1f ms %6.1f ms %6.1f ms\n", n, 1000 * a,
	    1000 * t, 1000 * (a - t), 1000 * (a - f) }'
done
# The part of it no round can shed: fl-fit's own start and exit, here to a
# worker that refuses the connection (exit 7): exec, loading libcurl and
# its thirty libraries, giving up. Timed as the rounds are.
refused() {
	local rc=0
	fl-fit -q --dataset train http://127.0.0.1:1 < global.blob 2>/dev/null || rc=$?
	[ "$rc" = 7 ]
}
: > start.t
for r in $(seq $((RUNS * 4))); do
	seconds refused >> start.t
done
awk -v s="$(median < start.t)" 'BEGIN { printf "fl-fit alone, to a refused connection: %.1f ms\n", 1000 * s }'
echo "(fixed: a round on 67-sample shards, training about 0; tmpfs: the same"
echo " with the workers' stores on tmpfs, so storing: what the fsyncs cost;"
echo " fl-avg: the round less fl-fit alone, what is left after the last model;"
echo " the three alternated round by round)"
echo "(medians of $RUNS; round: fl-fit --dataset | fl-avg -; local: the same fits"
echo " as local processes, all at once, and fl-avg; longest: the round's longest"
echo " fit as its worker timed it; ovh: (round - baseline) / round)"
