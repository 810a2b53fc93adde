#!/bin/sh
# round.sh: one federated round, safe to re-run and to run from cron.
#
#   round.sh [DIR]
#
# DIR (default .) holds:
#   global.blob   the global model (fl-pack init makes the first one)
#   workers.txt   the workers to ask, one name or URL a line ('#' comments)
#   round.conf    optional settings, sourced: DATASET (train), TEST (test),
#                 MIN (all workers), TIMEOUT (1800 s), FIT ("--epochs 1"),
#                 AVG ("": FedAvg; e.g. "--method median")
# and gets:
#   history/round-N.blob   every global model, kept before it is replaced
#   metrics.csv            round, time, workers answered, loss, accuracy
#
# A round reads global.blob, has the workers train it (fl-fit --dataset),
# averages what came back (fl-avg) and replaces global.blob atomically, so
# a round that fails or is killed half way changes nothing: run it again.
# A lock keeps two rounds from overlapping when cron fires again before
# one finished. Exit status: that of the step that failed; 0 when another
# round holds the lock.
set -eu
dir=${1:-.}
cd "$dir"

DATASET=train TEST=test MIN= TIMEOUT=1800 FIT="--epochs 1" AVG=
[ ! -f round.conf ] || . ./round.conf

exec 9> .round.lock
if ! flock -n 9; then
	echo "round.sh: another round is running in $PWD" >&2
	exit 0
fi

workers=$(sed 's/#.*//' workers.txt | tr -s ' \t\n' ' ')
set -- $workers
[ $# -gt 0 ] || { echo "round.sh: $PWD/workers.txt names no worker" >&2; exit 2; }
round=$(fl-pack info --json global.blob | sed -n 's/.*"round":\([0-9]*\).*/\1/p')
[ -n "$round" ] || round=0
mkdir -p history
[ -f "history/round-$round.blob" ] || cp global.blob "history/round-$round.blob"

# Train, then average. The trained models wait in .fits.blob (fl-avg
# reads files faster than a pipe); global.blob changes only at the end.
trap 'rm -f .fits.blob .eval.txt' EXIT
fl-fit -q --dataset "$DATASET" ${MIN:+--min "$MIN"} --timeout "$TIMEOUT" \
    $FIT "$@" < global.blob > .fits.blob
fl-avg -q $AVG .fits.blob -o next.blob
mv next.blob global.blob
round=$((round + 1))
cp global.blob "history/round-$round.blob"

# How good is it? Each worker evaluates on its test set; only figures come.
[ -f metrics.csv ] || echo "round,time,answered,loss,accuracy" > metrics.csv
if fl-fit --eval --dataset "$TEST" ${MIN:+--min "$MIN"} --timeout "$TIMEOUT" \
    "$@" < global.blob > .eval.txt; then
	awk -v r="$round" -v t="$(date +%s)" '
	    NR > 1 && $1 != "total" { n++ }
	    $1 == "total" { printf "%s,%s,%d,%s,%s\n", r, t, n, $2, $3 }' \
	    .eval.txt >> metrics.csv
else
	echo "round.sh: round $round done, but its evaluation failed" >&2
	echo "$round,$(date +%s),,," >> metrics.csv
fi
echo "round $round: $PWD/global.blob"
