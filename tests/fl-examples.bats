#!/usr/bin/env bats
# share/examples on real workers: round.sh (for cron) run twice, the
# experiment Makefile with make -j, simulate.sh's worker helper.

setup_file() {
	load test_helper
	export D="$BATS_FILE_TMPDIR"
	cd "$D" || return 1
	fl-pack dataset --header --csv "$FIXTURES/small.csv" -o all.blob
	fl-pack split -q --parts 2 --seed 1 --prefix part all.blob
	# the workers of share/lib/workers.sh, as the demo starts them
	cat > start.sh <<SH
. "$FLKIT_ROOT/share/lib/workers.sh"
workers_init "$D/w"
trap - EXIT INT TERM
worker_start alice --dataset train="$D/part1.blob" --dataset test="$D/part2.blob"
worker_start bob --dataset train="$D/part2.blob" --dataset test="$D/part1.blob"
workers_wait
echo \$wk_pids > "$D/pids"
SH
	sh start.sh 3>&-
}

teardown_file() {
	kill $(cat "$BATS_FILE_TMPDIR/pids") 2>/dev/null || true
}

setup() {
	load test_helper
	common_setup
	export FL_WORKERS="$D/w/workers"
}

@test "share/lib/workers.sh: two workers up, a token each way" {
	run -0 cat "$FL_WORKERS"
	assert_line --index 0 --regexp '^alice http://127\.0\.0\.1:[0-9]+ .*/token$'
	run -0 fl-get --info bob
	assert_output --partial 'train'
	# the token is needed
	url=$(awk '$1 == "bob" { print $2 }' "$FL_WORKERS")
	run -0 curl -s -o /dev/null -w '%{http_code}' "$url/v1/objects"
	assert_output 401
}

@test "share/examples/round.sh: a round, then another; a failed one changes nothing" {
	mkdir exp
	fl-pack init --arch 4,4,relu,3 --seed 1 -o exp/global.blob
	printf 'alice\nbob  # the second site\n' > exp/workers.txt
	echo 'FIT="--epochs 2 --lr 0.05"' > exp/round.conf
	run -0 "$FLKIT_ROOT/share/examples/round.sh" exp
	assert_output --partial "round 1:"
	run -0 "$FLKIT_ROOT/share/examples/round.sh" exp
	assert_output --partial "round 2:"
	[ -f exp/history/round-0.blob ] && [ -f exp/history/round-2.blob ]
	run -0 fl-pack info --json exp/global.blob
	assert_output --partial '"round":2'
	run -0 awk -F, 'NR > 1 { print $1, $3 }' exp/metrics.csv
	assert_output "$(printf '1 2\n2 2')"
	# a worker that is gone: the round fails, global.blob stays as it was
	cp exp/global.blob before.blob
	echo "ghost http://127.0.0.1:$(free_port)" >> "$FL_WORKERS.tmp"
	cat "$FL_WORKERS" "$FL_WORKERS.tmp" > workers2
	echo ghost >> exp/workers.txt
	FL_WORKERS=$PWD/workers2 run -7 "$FLKIT_ROOT/share/examples/round.sh" exp
	cmp before.blob exp/global.blob
	[ ! -e exp/next.blob ] && [ ! -e exp/.fits.blob ]
	# with a quorum it goes on without the ghost
	echo 'MIN=2' >> exp/round.conf
	FL_WORKERS=$PWD/workers2 run -0 "$FLKIT_ROOT/share/examples/round.sh" exp
	assert_output --partial "round 3:"
}

@test "share/examples/Makefile: rounds as targets, make -j, make again does nothing" {
	mkdir mk
	cp "$FLKIT_ROOT/share/examples/Makefile" mk/
	run -0 make -C mk -j2 ROUNDS=2 WORKERS="alice bob" ARCH=4,4,relu,3 \
		FIT="--epochs 1 --lr 0.05" eval
	assert_output --regexp 'round 2: loss [0-9.]+, accuracy [0-9.]+'
	[ -f mk/fits/r1/alice.blob ] && [ -f mk/fits/r2/bob.blob ]
	run -0 fl-pack info --json mk/round-2.blob
	assert_output --partial '"round":2'
	run -0 make -C mk -q ROUNDS=2 WORKERS="alice bob" ARCH=4,4,relu,3 all
}
