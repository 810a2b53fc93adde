#!/usr/bin/env bats
# Federated rounds over real workers on loopback: fl-fit --dataset KEY
# WORKER... (fan-out, --min, --timeout, --pointers, --eval) and
# fl-avg --on WORKER (aggregation on a worker).

setup_file() {
	load test_helper
	export D="$BATS_FILE_TMPDIR"
	cd "$D" || return 1
	echo "roundtoken-0123456789 read write" > tokens
	echo "roundtoken-0123456789" > token
	fl-pack dataset --header --csv "$FIXTURES/small.csv" -o train.blob
	fl-pack split --parts 3 --seed 1 --prefix part train.blob >/dev/null
	fl-pack init --arch 4,4,relu,3 --seed 1 -o m.blob
	local i
	for i in 1 2 3; do
		eval "export P$i=$(free_port)"
		port=$(eval echo \$P$i)
		fl-serve -v --name w$i --listen 127.0.0.1:$port --store "$D/s$i" \
			--token-file tokens --dataset train="$D/part$i.blob" \
			3>&- 2>"$D/w$i.log" &
		echo $! > "$D/w$i.pid"
	done
	for i in 1 2 3; do
		port=$(eval echo \$P$i)
		wait_for curl -sf http://127.0.0.1:$port/v1/health
	done
}

teardown_file() {
	local i rc=0
	for i in 1 2 3; do
		stop_server "$(cat "$BATS_FILE_TMPDIR/w$i.pid")" "$BATS_FILE_TMPDIR/w$i.log" || rc=1
	done
	return $rc
}

setup() {
	load test_helper
	common_setup
	{
		echo "w1 http://127.0.0.1:$P1 $D/token"
		echo "w2 http://127.0.0.1:$P2 $D/token"
		echo "w3 http://127.0.0.1:$P3 $D/token"
	} > "$FL_WORKERS"
}

teardown() {
	if [ -n "${EXTRA_PID:-}" ]; then
		{ kill -9 "$EXTRA_PID" && wait "$EXTRA_PID"; } 2>/dev/null || true
	fi
}

# blobs FILE: how many blobs FILE holds back to back, their samples and
# clients (fl-pack info --json prints a line per blob)
blobs() {
	fl-pack info --json "$1" | python3 -c 'import json, sys
h = [json.loads(l) for l in sys.stdin]
print(len(h), sum(b["meta"]["samples"] for b in h),
      " ".join(sorted(b["meta"]["client"] for b in h)))'
}

@test "fl-fit --dataset: a full round, results back to back for fl-avg" {
	local gets
	gets=$(cat "$D"/w?.log | grep -c "GET /v1/objects/" || true)
	fl-fit -q --dataset train --epochs 2 --lr 0.05 w1 w2 w3 < "$D/m.blob" > fits.blob
	# the models came back in the fits' replies: no worker saw a GET
	run -0 grep -c "POST /v1/fit/train" "$D/w1.log"
	[ "$(cat "$D"/w?.log | grep -c "GET /v1/objects/" || true)" = "$gets" ]
	run -0 fl-pack verify fits.blob
	run -0 blobs fits.blob
	assert_output "3 30 w1 w2 w3"
	# each fitted model names its parent and keeps the round
	run -0 python3 - "$D/m.blob" <<'PY'
import json, subprocess, sys
def info(p):
    out = subprocess.check_output(["fl-pack", "info", "--json", p], text=True)
    return [json.loads(l) for l in out.splitlines()]
parent = info(sys.argv[1])[0]["meta"]["model_id"]
for b in info("fits.blob"):
    m = b["meta"]
    assert m["parent_id"] == parent and m["model_id"] != parent, m
    assert m["round"] == 0 and m["fit"]["epochs"] == 2, m
PY
	fl-avg fits.blob > next.blob
	run -0 python3 -c 'import json, subprocess
m = json.loads(subprocess.check_output(["fl-pack", "info", "--json", "next.blob"]))["meta"]
assert m["samples"] == 30 and sorted(m["contributors"]) == ["w1", "w2", "w3"], m
assert m["round"] == 1 and len(m["parents"]) == 3, m'

	# the round's result is stored on every worker, tagged
	run -0 fl-get --list w2
	assert_output --partial latest-fit
}

@test "fl-fit --dataset | fl-avg -: the pipeline of the README" {
	fl-fit -q --dataset train w1 w2 w3 < "$D/m.blob" | fl-avg -q - > g.blob
	run -0 fl-pack info --json g.blob
	assert_output --partial '"contributors"'
	# fl-pack info shows the lineage: the aggregate's parents and their
	# clients, and each fitted model's parent
	run -0 fl-pack info g.blob
	assert_line --regexp '^  [0-9a-f]{8}  fedavg of 3 models in round 1:$'
	assert_line --regexp '^ +[0-9a-f]{8} \(w1\)$'
	assert_line --regexp '^ +[0-9a-f]{8} \(w3\)$'
	fl-fit -q --dataset train w2 < "$D/m.blob" > w2.blob
	parent=$(fl-pack info --json "$D/m.blob" | sed 's/.*"model_id":"\([0-9a-f]\{8\}\).*/\1/')
	run -0 fl-pack info w2.blob
	assert_line --regexp "^  [0-9a-f]{8}  trained by w2 in round 0 from $parent\$"
}

@test "fl-fit --dataset: a full disk on standard output fails the round" {
	[ -w /dev/full ] || skip "no /dev/full"
	run -3 --separate-stderr bash -c 'fl-fit -q --dataset train w1 < "$D/m.blob" > /dev/full'
	[[ "$stderr" == *"<stdout>"* ]] || { echo "stderr: $stderr"; false; }
}

@test "fl-fit --eval --dataset: a table per worker and the weighted total" {
	run -0 --separate-stderr fl-fit --eval --dataset train w1 w2 w3 < "$D/m.blob"
	assert_line --index 0 --regexp '^worker +loss +accuracy +samples$'
	assert_line --index 1 --regexp '^w1 +[0-9.]+ +[0-9.]+ +[0-9]+$'
	assert_line --index 4 --regexp '^total +[0-9.]+ +[0-9.]+ +30$'
	run -0 fl-fit --eval --json --dataset train w1 w2 w3 < "$D/m.blob"
	run -0 python3 -c 'import json, sys
r = json.loads(sys.argv[1])
ws = r["workers"]
assert [w["worker"] for w in ws] == ["w1", "w2", "w3"], ws
n = sum(w["samples"] for w in ws)
loss = sum(w["loss"] * w["samples"] for w in ws) / n
assert n == r["samples"] == 30 and abs(loss - r["loss"]) < 1e-9, r
print("ok")' "$output"
	# the same figures as fl-fit --eval --local on the union of the parts
	run -0 fl-fit --eval --json --local "$D/train.blob" < "$D/m.blob"
	local l=$output
	run -0 fl-fit --eval --json --dataset train w1 w2 w3 < "$D/m.blob"
	run -0 python3 -c 'import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert abs(a["loss"] - b["loss"]) < 1e-5 * a["loss"] and abs(a["accuracy"] - b["accuracy"]) < 1e-5, (a, b)' "$l" "$output"
}

@test "fl-fit --dataset: an unknown key names the worker and exits 6" {
	run -6 --separate-stderr fl-fit --dataset nope w1 w2 < "$D/m.blob"
	assert_output ""
	[[ $stderr == *"w1"*"no dataset 'nope'"* ]]
	[[ $stderr == *"w2"*"no dataset 'nope'"* ]]
}

@test "fl-fit --dataset: bad uses are usage errors" {
	run -2 fl-fit --dataset train < "$D/m.blob"
	run -2 fl-fit --dataset train --local "$D/train.blob" w1 < "$D/m.blob"
	run -2 fl-fit --dataset train --min 3 w1 w2 < "$D/m.blob"
	run -2 fl-fit --dataset train --threads 2 w1 < "$D/m.blob"
	run -2 fl-fit --predict --dataset train w1 < "$D/m.blob"
	run -2 fl-fit --eval --pointers --dataset train w1 < "$D/m.blob"
	run -2 fl-fit --dataset train w1 w1 < "$D/m.blob"
	run -2 fl-fit --local "$D/train.blob" --min 1 < "$D/m.blob"
	run -6 fl-fit --dataset train nosuchworker < "$D/m.blob"
	# a bad option is refused by the workers, before any training
	run -2 --separate-stderr fl-fit --dataset train --epochs 0 w1 < "$D/m.blob"
	# not a model
	run -4 fl-fit --dataset train w1 < "$D/train.blob"
}

@test "fl-fit --dataset: a dead worker is named, --min lets the round finish" {
	local port
	port=$(free_port)
	echo "dead http://127.0.0.1:$port $D/token" >> "$FL_WORKERS"
	run -7 --separate-stderr fl-fit --dataset train w1 dead < "$D/m.blob"
	[[ $stderr == *"dead"* ]]
	run -0 --separate-stderr fl-fit --dataset train --min 1 w1 dead < "$D/m.blob"
	[[ $stderr == *"dead"* ]]
	[[ $stderr == *"1 of 2 workers answered"* ]]
}

@test "fl-fit --dataset: a worker killed mid-fit; the round completes with --min" {
	# a worker whose fit lasts: many rows
	python3 -c 'import random
random.seed(1)
print("a,b,c,d,label")
for i in range(200000):
    print("%.3f,%.3f,%.3f,%.3f,%d" % (random.random(), random.random(),
          random.random(), random.random(), i % 3))' > big.csv
	fl-pack dataset --header --csv big.csv -o big.blob
	local port
	port=$(free_port)
	fl-serve -v --name big --listen 127.0.0.1:$port --store "$PWD/sb" \
		--token-file "$D/tokens" --dataset train="$PWD/big.blob" 3>&- 2>big.log &
	EXTRA_PID=$!
	wait_for curl -sf http://127.0.0.1:$port/v1/health
	echo "big http://127.0.0.1:$port $D/token" >> "$FL_WORKERS"
	fl-fit --dataset train --epochs 40 --min 2 w1 big w2 < "$D/m.blob" \
		> fits.blob 2> err 3>&- &
	local fit=$!
	wait_for grep -q 'fit of' big.log
	kill -9 "$EXTRA_PID"
	local rc=0
	wait "$fit" || rc=$?
	[ "$rc" -eq 0 ]
	run -0 cat err
	assert_output --partial "big:"
	assert_output --partial "2 of 3 workers answered"
	run -0 blobs fits.blob
	assert_output --regexp '^2 [0-9]+ w1 w2$'
}

@test "fl-fit --dataset --timeout: a worker that never answers" {
	local port
	port=$(free_port)
	python3 "$FIXTURES/fakeworker.py" --port "$port" --stall 3>&- &
	EXTRA_PID=$!
	wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))"
	echo "stall http://127.0.0.1:$port" >> "$FL_WORKERS"
	# enough answered by the deadline: the round succeeds without it
	SECONDS=0
	run -0 --separate-stderr fl-fit --dataset train --timeout 2 --min 2 \
		w1 stall w2 < "$D/m.blob"
	[ "$SECONDS" -lt 30 ]
	[[ $stderr == *"stall: no answer within 2 s"* ]]
	# too few: exit 9, timeout
	run -9 --separate-stderr fl-fit --dataset train --timeout 1 w1 stall \
		< "$D/m.blob"
	[[ $stderr == *"stall: no answer within 1 s"* ]]
	[[ $stderr == *"1 of 2 answered within 1 s"* ]]
}

@test "fl-fit --dataset: a busy worker (503) is asked again" {
	local port
	port=$(free_port)
	python3 "$FIXTURES/fakeworker.py" --port "$port" --busy 2 3>&- &
	EXTRA_PID=$!
	wait_for curl -sf "http://127.0.0.1:$port/v1/health"
	echo "busy http://127.0.0.1:$port" >> "$FL_WORKERS"
	run -0 --separate-stderr fl-fit -v --dataset train w1 busy < "$D/m.blob"
	run -0 curl -sf -H 'Accept: application/json' "http://127.0.0.1:$port/v1/fits"
	assert_output '{"fits": 3}'
	# ... but not past the round's deadline
	kill "$EXTRA_PID"
	python3 "$FIXTURES/fakeworker.py" --port "$port" --busy 100 3>&- &
	EXTRA_PID=$!
	wait_for curl -sf "http://127.0.0.1:$port/v1/health"
	run -9 --separate-stderr fl-fit --dataset train --timeout 2 w1 busy < "$D/m.blob"
	[[ $stderr == *"busy: no answer within 2 s"* ]]
}

@test "fl-fit --dataset --parallel 1: one worker at a time, all answered" {
	fl-fit -q --dataset train --parallel 1 w3 w2 w1 < "$D/m.blob" > fits.blob
	run -0 blobs fits.blob
	assert_output "3 30 w1 w2 w3"
}

@test "fl-fit --dataset: progress events on /v1/events while it trains, 20 a second at most" {
	local epochs
	for epochs in 3 20000; do
		rm -f ready
		python3 "$FIXTURES/wsevents.py" "$P2" roundtoken-0123456789 1000 fitted \
			> events 3>&- &
		local pid=$!
		wait_for test -e ready
		fl-fit -q --dataset train --epochs $epochs --batch 1 w2 < "$D/m.blob" > /dev/null
		wait "$pid"
		# an epoch's end is told unless one was told 50 ms before; the
		# last always is: 20000 epochs of 10 samples are not 20000 events
		run -0 python3 - "$epochs" <<'PY'
import json, sys
E = int(sys.argv[1])
ev = [json.loads(l) for l in open("events")]
assert ev[-1]["event"] == "fitted", [e["event"] for e in ev[-3:]]
prog = [e for e in ev if e["event"] == "progress"]
done = [e["epoch"] for e in prog if e.get("epoch_done")]
assert done == sorted(set(done)) and done[-1] == E, done[-5:]
assert all(e["dataset"] == "train" and "loss" in e for e in prog), prog[:3]
assert len(prog) < 1000, len(prog)
print("ok")
PY
		assert_output ok
	done
}

@test "fl-fit --pointers | fl-avg --on: the coordinator never gets an update" {
	: > "$D/w1.log"; : > "$D/w2.log"; : > "$D/w3.log"
	run -0 fl-fit --pointers --dataset train w1 w2 w3 < "$D/m.blob"
	printf '%s\n' "$output" > ptrs
	run -0 grep -c '^w[123]/[0-9a-f]\{16\}$' ptrs
	assert_output 3
	run -0 fl-avg --on w1 - < ptrs
	[[ $output =~ ^w1/[0-9a-f]{16}$ ]]
	local agg=$output
	# no worker served an object to anyone but another worker
	run grep -h 'GET /v1/\(objects/\|latest\|tags/\)' "$D"/w[123].log
	assert_output ""
	run -0 grep -c 'push' "$D/w2.log"
	# the copies made for it are gone again; the inputs stay where they were
	run -0 fl-get --list --json w1
	run -0 python3 -c 'import json, sys
objs = json.loads(sys.argv[1])
objs = objs["objects"] if isinstance(objs, dict) else objs
ids = {o["id"] for o in objs}
ptrs = [l.strip().split("/") for l in open("ptrs")]
for w, i in ptrs:
    assert (i in ids) == (w == "w1"), (w, i)
print(len(ids))' "$output"
	# the aggregate is what fl-avg computes from the same inputs
	while read -r p; do fl-get "$p"; done < ptrs > inputs.blob
	fl-avg inputs.blob > local.blob
	fl-get "$agg" > remote.blob
	run -0 python3 -c 'import json, subprocess
def t(p):
    h = json.loads(subprocess.check_output(["fl-pack", "info", "--json", p]))
    return [(x["name"], x["crc32"]) for x in h["tensors"]], h["meta"]
a, ma = t("local.blob"); b, mb = t("remote.blob")
assert a == b, (a, b)
assert ma["samples"] == mb["samples"] == 30 and sorted(mb["contributors"]) == ["w1", "w2", "w3"], mb
print("ok")'
}

@test "fl-avg --on: rules, base and server state travel; bad inputs" {
	run -0 fl-fit --pointers --dataset train w1 w2 w3 < "$D/m.blob"
	printf '%s\n' "$output" > ptrs
	base=$(fl-send w3 "$D/m.blob")
	run -0 fl-avg --on w2 --method median $(cat ptrs)
	run -0 fl-avg --on w2 --base "$base" --server-opt adam --server-lr 0.01 \
		--state adam-state $(cat ptrs)
	run -0 fl-get --list w2
	assert_output --partial adam-state
	# a second round reads the state
	run -0 fl-avg --on w2 --base "$base" --server-opt adam --server-lr 0.01 \
		--state adam-state $(cat ptrs)
	run -6 --separate-stderr fl-avg --on w2 w1/0123456789abcdef
	[[ $stderr == *"no such object"* ]]
	run -2 fl-avg --on w2 -o x.blob $(cat ptrs)
	run -2 fl-avg --on w2 --byzantine 1 $(cat ptrs)
	run -2 fl-avg --on w2 --state a/b --base "$base" --server-opt adam $(cat ptrs)
	run -2 --separate-stderr fl-avg --on w2 --method krum --byzantine 5 $(cat ptrs)
}

@test "fl-avg POINTER...: pointers are fetched, checked, and averaged here" {
	run -0 fl-fit --pointers --dataset train w1 w2 w3 < "$D/m.blob"
	printf '%s\n' "$output" > ptrs
	run -0 fl-avg $(cat ptrs) -o a.blob
	while read -r p; do fl-get "$p"; done < ptrs > in.blob
	fl-avg in.blob -o b.blob
	run -0 python3 -c 'import json, subprocess
t = [json.loads(subprocess.check_output(["fl-pack", "info", "--json", p]))
     for p in ("a.blob", "b.blob")]
assert [x["crc32"] for x in t[0]["tensors"]] == [x["crc32"] for x in t[1]["tensors"]]'
	# errors name the pointer, and standard input's blobs stay its own
	fl-get "$(head -n 1 ptrs)" > one.blob
	python3 - "$FIXTURES" one.blob nan.blob <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from mkblob import dump, unpack, write
raw = open(sys.argv[2], "rb").read()
b = dump(raw)[0]
names = list(b["tensors"])
b["tensors"][names[0]][3] = float("nan")
shapes = {t["name"]: t["shape"] for t in unpack(raw, 12)[0]["tensors"]}
write(sys.argv[3], {"meta": b["meta"], "tensors": [[n, b["dtypes"][n],
      shapes[n], b["tensors"][n]] for n in names]})
PY
	run -10 --separate-stderr fl-avg $(cat ptrs) nan.blob
	[[ $stderr == *"nan.blob: tensor "*" holds NaN at element 3"* ]]
	run -10 --separate-stderr bash -c "cat one.blob nan.blob | fl-avg - $(head -n 1 ptrs) >/dev/null"
	[[ $stderr == *"<stdin> (blob 2): tensor "*" holds NaN at element 3"* ]]
	run -10 --separate-stderr fl-avg "$(head -n 1 ptrs)" - < nan.blob
	[[ $stderr == *"<stdin>: tensor "*" holds NaN at element 3"* ]]
	# a file of that name wins; an unknown name is a missing file
	run -6 --separate-stderr fl-avg nosuch
	run -6 --separate-stderr fl-avg w1/0123456789abcdef
	[[ $stderr == *"w1"*"no such object"* ]]
}

@test "fl-fit --dataset on a terminal: each worker's epoch, polled from /v1/fits" {
	command -v script >/dev/null || skip "no script(1)"
	local epochs=500000
	# valgrind runs the fit some 30 times slower
	[ -n "$VALGRIND" ] && epochs=20000
	run -0 script -qec "fl-fit --dataset train --epochs $epochs --batch 1 w1 \
		< $D/m.blob > $BATS_TEST_TMPDIR/fit.blob" /dev/null
	assert_output --regexp "w1 epoch [0-9]+/$epochs [0-9]+%"
	run -0 fl-pack verify "$BATS_TEST_TMPDIR/fit.blob"
	# once it is done, the worker lists no fit under way
	run -0 curl -sf -H "Authorization: Bearer roundtoken-0123456789" \
		-H "Accept: application/json" "http://127.0.0.1:$P1/v1/fits"
	assert_output '{"fits":[]}'
}
