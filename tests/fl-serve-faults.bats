#!/usr/bin/env bats
# fl-serve under faults: a full disk, kill -9 during uploads, the link cut
# during a move, clients that trickle. Real servers on loopback ports (and a
# network namespace for the cut link); root is needed for the mount and the
# namespace, and those tests skip, saying why, without it.

setup_file() {
	load test_helper
	export D="$BATS_FILE_TMPDIR"
	cd "$D" || return 1
	fl-pack init --arch 8,4 --seed 1 -o small.blob
	fl-pack init --arch 400,400 --seed 2 -o big.blob	# 640 KB
	fl-pack init --arch 500,500 --seed 3 -o move.blob	# 1 MB
	for i in $(seq 0 19); do
		fl-pack init --arch $((100 + 40 * i)),64 --seed "$i" -o "k$i.blob"
	done
}

setup() {
	load test_helper
	common_setup
}

# Undo what a test set up, whether it passed or not.
teardown() {
	local p
	if [ -f "$BATS_TEST_TMPDIR/pids" ]; then
		while read -r p; do
			kill -9 "$p" 2>/dev/null || true
		done <"$BATS_TEST_TMPDIR/pids"
	fi
	[ -z "${MNT:-}" ] || umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	[ -z "${NS:-}" ] || ip netns del "$NS" 2>/dev/null || true
	[ -z "${VETH:-}" ] || ip link del "$VETH" 2>/dev/null || true
}

# serve PORT STORE [options]: start fl-serve in the background, remember
# its pid in $SPID (and for teardown), wait until it answers.
serve() {
	local p=$1 s=$2
	shift 2
	fl-serve -q --listen 127.0.0.1:"$p" --store "$s" "$@" 3>&- 2>>"$BATS_TEST_TMPDIR/serve.log" &
	SPID=$!
	echo "$SPID" >>"$BATS_TEST_TMPDIR/pids"
	wait_for curl -sf http://127.0.0.1:"$p"/v1/health
}

@test "faults: a full disk: 507 and exit 5, nothing partial left, earlier objects still served" {
	local p ptr
	MNT=$BATS_TEST_TMPDIR/full
	mkdir -p "$MNT"
	mount -t tmpfs -o size=600k tmpfs "$MNT" 2>/dev/null ||
		skip "cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)"
	p=$(free_port)
	serve "$p" "$MNT"
	ptr=$(fl-send http://127.0.0.1:$p "$D/small.blob")
	run -5 --separate-stderr fl-send http://127.0.0.1:$p "$D/big.blob"
	[[ $stderr == *"No space left on device (HTTP 507)"* ]]
	[[ $stderr != *"/tmp/up."* ]]	# the worker's paths stay its own
	[ "$(ls "$MNT/objects")" = "${ptr##*/}" ]
	wait_for test -z "$(ls "$MNT/tmp")"
	# the worker keeps serving what it has, and stores what fits
	run -0 fl-get -o got "$ptr"
	cmp got "$D/small.blob"
	run -0 fl-send http://127.0.0.1:$p "$D/small.blob"
	run -0 fl-get -o got "$output"
	cmp got "$D/small.blob"
}

@test "faults: a full disk while the upload is paused: 507 at once, no spin" {
	local p start pids=()
	MNT=$BATS_TEST_TMPDIR/full
	mkdir -p "$MNT"
	mount -t tmpfs -o size=3m tmpfs "$MNT" 2>/dev/null ||
		skip "cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)"
	fl-pack init --arch 2500,1000 --seed 5 -o big10.blob	# 10 MB
	printf '#!/bin/sh\nsleep 2\nexec cat\n' > slow.sh
	chmod +x slow.sh
	p=$(free_port)
	serve "$p" "$MNT" --timeout 30 --handler slow="$PWD/slow.sh"
	# the 4 worker threads busy: the upload queues past 8 MiB and its
	# socket is paused when the disk fills. lws serves no POLLOUT of a
	# paused socket: the 507 never left, the service thread spun for 30 s.
	for i in 1 2 3 4; do
		curl -s -o /dev/null --data-binary x http://127.0.0.1:$p/v1/messages/slow 3>&- &
		pids+=($!)
	done
	sleep 0.3
	start=$SECONDS
	run -5 --separate-stderr fl-send --timeout 20 http://127.0.0.1:$p big10.blob
	[[ $stderr == *"No space left on device (HTTP 507)"* ]]
	[ $((SECONDS - start)) -lt 10 ]
	wait "${pids[@]}"
	wait_for test -z "$(ls "$MNT/tmp")"
	run -0 curl -sf --max-time 5 http://127.0.0.1:$p/v1/health
}

@test "faults: the disk cannot sync the store's directories or write its files: 500 naming them, nothing half-stored, an object kept untagged said to be" {
	local p s=$BATS_TEST_TMPDIR/st ptr id
	cc -shared -fPIC -o failsync.so "$FIXTURES/failsync.c" -ldl
	p=$(free_port)
	# the shim fails fsync of a directory while the file "fail" exists
	export FL_FAILSYNC_DIR=$PWD/fail LD_PRELOAD=$PWD/failsync.so
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	serve "$p" "$s"
	unset LD_PRELOAD
	ptr=$(fl-send http://127.0.0.1:$p "$D/small.blob")
	touch fail
	run -1 --separate-stderr fl-send --retry 0 http://127.0.0.1:$p "$D/k1.blob"
	[[ $stderr == *"objects: fsync: Input/output error (HTTP 500)"* ]]
	[[ $stderr != *"$s"* ]]	# the worker's paths stay its own
	run -0 curl -s -o tag.out -w '%{http_code}' -X PUT \
	    "http://127.0.0.1:$p/v1/objects/${ptr##*/}/tags/best"
	[ "$output" = 500 ]
	grep -q 'fsync: Input/output error' tag.out
	# a tag the disk did not keep is not served either
	run -0 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/v1/tags/best"
	[ "$output" = 404 ]
	# the store's own directory alone: the object is kept, and said to be
	echo "$s" >fail
	run -1 --separate-stderr fl-send --retry 0 --tag best http://127.0.0.1:$p "$D/k2.blob"
	[[ $stderr == *"stored as "*", but not tagged best: the store's directory: fsync: Input/output error"* ]]
	id=${stderr#*stored as }
	id=${id%%,*}
	run -0 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/v1/tags/best"
	[ "$output" = 404 ]
	run -0 fl-get -o got "http://127.0.0.1:$p/$id"
	cmp got "$D/k2.blob"
	# a delete whose unlink may not be on the disk says so
	echo "$s/objects" >fail
	run -1 --separate-stderr fl-get --delete "http://127.0.0.1:$p/$id"
	[[ $stderr == *"objects: fsync: Input/output error"* ]]
	rm fail
	run -6 fl-get -o got "http://127.0.0.1:$p/$id"
	# a tag or a delete waiting on a slow disk does not hold up the others
	echo slow >fail
	curl -s -o /dev/null -X PUT "http://127.0.0.1:$p/v1/objects/${ptr##*/}/tags/slow" &
	local slowpid=$!
	sleep 0.5
	run -0 curl -sf --max-time 10 "http://127.0.0.1:$p/v1/health"
	kill -0 "$slowpid"	# answered while the tag's fsync was still under way
	wait "$slowpid"
	# a write that fails for another reason than a full disk is not 507
	echo "write $s/tmp" >fail
	run -1 --separate-stderr fl-send --retry 0 http://127.0.0.1:$p "$D/k1.blob"
	[[ $stderr == *"cannot write the upload to the store: Input/output error (HTTP 500)"* ]]
	rm fail
	# the refused object is gone, the other served; a restart agrees
	[ "$(ls "$s/objects")" = "${ptr##*/}" ]
	[ -z "$(ls "$s/tmp")" ]
	kill -9 "$SPID"
	wait "$SPID" 2>/dev/null || true
	serve "$p" "$s"
	run -0 fl-get --list http://127.0.0.1:$p
	[ "$(grep -c '^[0-9a-f]\{16\}' <<<"$output")" = 1 ]
	run -0 fl-get -o got "$ptr"
	cmp got "$D/small.blob"
	id=$(fl-send http://127.0.0.1:$p "$D/k1.blob")
	run -0 fl-get -o got "$id"
	cmp got "$D/k1.blob"
}

@test "faults: an aggregate whose tags the disk cannot keep: 500, neither tag moved, no object left" {
	local p s=$BATS_TEST_TMPDIR/st u base a b first state n
	cc -shared -fPIC -o failsync.so "$FIXTURES/failsync.c" -ldl
	p=$(free_port)
	u=http://127.0.0.1:$p
	export FL_FAILSYNC_DIR=$PWD/fail LD_PRELOAD=$PWD/failsync.so
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	serve "$p" "$s"
	unset LD_PRELOAD
	fl-pack init --arch 8,4 --seed 7 -o a.blob
	fl-pack init --arch 8,4 --seed 8 -o b.blob
	base=$(fl-send $u "$D/small.blob")
	a=$(fl-send $u a.blob)
	b=$(fl-send $u b.blob)
	set -- --uniform --base "$base" --server-opt adam --state st "$a" "$b"
	run -0 fl-avg --on $u "$@"
	first=$(curl -sf "$u/v1/tags/latest-aggregate" | fl-pack info --json - | sha1sum)
	state=$(curl -sf "$u/v1/tags/st" | sha1sum)
	n=$(ls "$s/objects" | wc -l)
	# objects/ syncs, the store's directory (the tags file's) does not
	echo "$s" >fail
	run -1 --separate-stderr fl-avg --on $u "$@"
	[[ $stderr == *"fsync: Input/output error"* ]]
	rm fail
	[ "$(ls "$s/objects" | wc -l)" = "$n" ]
	[ "$(curl -sf "$u/v1/tags/latest-aggregate" | fl-pack info --json - | sha1sum)" = "$first" ]
	[ "$(curl -sf "$u/v1/tags/st" | sha1sum)" = "$state" ]
	# the disk back, the next round moves both
	run -0 fl-avg --on $u "$@"
	[ "$(ls "$s/objects" | wc -l)" = $((n + 2)) ]
	[ "$(curl -sf "$u/v1/tags/st" | sha1sum)" != "$state" ]
	# the aggregate's tag cannot also be the state's
	run -0 curl -s -o /dev/null -w '%{http_code}' "$u/v1/tags/latest-aggregate"
	[ "$output" = 200 ]
	run -2 --separate-stderr fl-avg --on $u --uniform --base "$base" --server-opt adam --state latest-aggregate "$a" "$b"
	[[ $stderr == *"state: the tag latest-aggregate is the aggregate's own (HTTP 400)"* ]]
}

@test "faults: an upload the worker pauses while its threads are busy is not dropped by --timeout" {
	# four handlers hold the four worker threads for 5 s; a 10 MB upload
	# fills the queue and is paused meanwhile, for longer than --timeout
	local p s=$BATS_TEST_TMPDIR/st i ptr busy=()
	printf '#!/bin/sh\nsleep 5\ncat\n' >slow.sh
	chmod +x slow.sh
	fl-pack init --arch 2500,1000 --seed 4 -o ten.blob
	p=$(free_port)
	serve "$p" "$s" --timeout 2 --handler slow="$PWD/slow.sh"
	for i in 1 2 3 4; do
		curl -s -o /dev/null --data x "http://127.0.0.1:$p/v1/messages/slow" 3>&- &
		busy+=($!)
	done
	sleep 0.5
	run -0 fl-send --retry 0 http://127.0.0.1:$p ten.blob
	ptr=$output
	run -0 fl-get -o got "$ptr"
	cmp got ten.blob
	wait "${busy[@]}"
}

@test "faults: a file in objects/ that the store did not take at its start is never served" {
	# a partial copy (a crash of something else, a disk gone bad): the
	# index leaves it out, and so must every route that reads objects
	local p s=$BATS_TEST_TMPDIR/st ptr id=00000000000000aa
	p=$(free_port)
	serve "$p" "$s"
	ptr=$(fl-send http://127.0.0.1:$p "$D/big.blob")
	kill -9 "$SPID"
	wait "$SPID" 2>/dev/null || true
	head -c 300000 "$D/big.blob" >"$s/objects/$id"
	serve "$p" "$s"
	for r in "objects/$id" "objects/$id/header"; do
		run -0 curl -s -o out -w '%{http_code}' "http://127.0.0.1:$p/v1/$r"
		[ "$output" = 404 ]
	done
	run -6 fl-get -o got "http://127.0.0.1:$p/$id"
	run -0 fl-get --list http://127.0.0.1:$p
	[[ $output != *"$id"* ]]
	run -0 fl-get -o got "$ptr"
	cmp got "$D/big.blob"
}

@test "faults: kill -9 at random moments during 100 uploads: every acknowledged object intact" {
	local p s=$BATS_TEST_TMPDIR/st kills=0 c alive f id b n
	p=$(free_port)
	serve "$p" "$s"
	cat >client.sh <<'SH'
#!/bin/bash
# client.sh K URL: 25 uploads; "POINTER BLOB" for each one acknowledged.
# Upload j waits for the j/8-th kill, so that the uploads span at least
# three kills however fast they go.
for j in $(seq 25); do
	while [ "$(cat kills)" -lt $((j / 8)) ]; do
		sleep 0.02
	done
	b=k$(((25 * $1 + j) % 20)).blob
	if out=$(fl-send --retry 0 --connect-timeout 2 --timeout 10 "$2" "$D/$b" 2>/dev/null); then
		echo "$out $b"
	else
		sleep 0.05
	fi
done >"acked.$1"
SH
	chmod +x client.sh
	echo 0 >kills
	local cpids=()
	for c in 0 1 2 3; do
		./client.sh "$c" http://127.0.0.1:$p 3>&- &
		cpids+=($!)
	done
	while :; do
		alive=0
		for c in "${cpids[@]}"; do
			kill -0 "$c" 2>/dev/null && alive=1
		done
		[ "$alive" = 1 ] || break
		sleep "0.$((RANDOM % 3 + 1))"
		kill -9 "$SPID"
		wait "$SPID" 2>/dev/null || true
		kills=$((kills + 1))
		serve "$p" "$s"
		echo "$kills" >kills.new && mv kills.new kills
	done
	for c in "${cpids[@]}"; do
		wait "$c"
	done
	cat acked.* >acked
	n=$(wc -l <acked)
	echo "$kills kills, $n of 100 uploads acknowledged" >&3
	[ "$kills" -ge 3 ]
	# under valgrind an upload outlasts most of the 0.1-0.3 s between kills
	[ -n "$VALGRIND" ] || [ "$n" -ge 10 ]
	# every acknowledged object, byte for byte from a restarted worker
	while read -r id b; do
		fl-get -o got "$id"
		cmp got "$D/$b"
	done <acked
	# nothing partial: no temp file survives a restart, every object is whole
	[ -z "$(ls "$s/tmp")" ]
	[ "$(ls "$s/objects" | wc -l)" -ge "$n" ]
	run -0 fl-pack verify "$s"/objects/*
}

@test "faults: the link cut during fl-move: exit 7, the source keeps its copy, no partial object" {
	local ps pd src a b ptr
	command -v ip >/dev/null && command -v tc >/dev/null || skip "no iproute2 (ip, tc)"
	NS=flkit-faults-$$
	ip netns add "$NS" 2>/dev/null || { NS=; skip "cannot make a network namespace here (needs root)"; }
	# a /30 of 10.0.0.0/8 from the pid, so that parallel runs do not meet
	a=$(($$ % 250)) b=$((($$ / 250) % 64 * 4))
	VETH=flr$$
	ip link add "$VETH" type veth peer name fld$$
	ip link set fld$$ netns "$NS"
	ip addr add 10.$a.$b.1/30 dev "$VETH"
	ip link set "$VETH" up
	ip -n "$NS" addr add 10.$a.$b.2/30 dev fld$$
	ip -n "$NS" link set fld$$ up
	# 2 Mbit/s towards the destination: the move takes about 4 s uncut
	tc qdisc add dev "$VETH" root tbf rate 2mbit burst 32kbit latency 400ms ||
		skip "no tbf queueing discipline"
	ps=$(free_port) pd=$(free_port)
	serve "$ps" src --timeout 2
	ip netns exec "$NS" fl-serve -q --insecure --timeout 2 --listen 10.$a.$b.2:$pd \
		--store "$BATS_TEST_TMPDIR/dst" 3>&- 2>>"$BATS_TEST_TMPDIR/serve.log" &
	echo $! >>"$BATS_TEST_TMPDIR/pids"
	wait_for curl -sf http://10.$a.$b.2:$pd/v1/health
	ptr=$(fl-send http://127.0.0.1:$ps "$D/move.blob")
	( wait_for bash -c "[ -n \"\$(ls '$BATS_TEST_TMPDIR/dst/tmp')\" ]" && sleep 0.3 &&
		ip link set "$VETH" down ) 3>&- &
	run -7 --separate-stderr fl-move "$ptr" http://10.$a.$b.2:$pd
	[[ $stderr == *"push to http://10.$a.$b.2:$pd"*"(HTTP 502)"* ]]
	# the source keeps its copy
	run -0 fl-get -o got "$ptr"
	cmp got "$D/move.blob"
	# the destination has no object, and drops the stalled upload's temp file
	[ -z "$(ls "$BATS_TEST_TMPDIR/dst/objects")" ]
	wait_for test -z "$(ls "$BATS_TEST_TMPDIR/dst/tmp")"
}

@test "faults: clients sending a byte a second do not starve others, and are dropped" {
	local p i
	p=$(free_port)
	serve "$p" st --timeout 2
	cat >slow.py <<'PY'
import socket, sys, time
# slow.py PORT hdr|body: send a request a byte a second; say when dropped
port, what = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
data = b"POST /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
if what == "hdr":
    data = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
else:
    s.sendall(data)
    data = b"a" * 100000
open("started.%s.%d" % (what, s.getsockname()[1]), "w").close()
t0 = time.time()
try:
    for c in data:
        if time.time() - t0 > 20:
            break
        s.send(bytes([c]))
        time.sleep(1)
except OSError:
    print("dropped")
    sys.exit(0)
print("kept")
PY
	for i in 1 2 3; do
		python3 slow.py "$p" hdr >"out.hdr.$i" 3>&- &
		echo $! >>"$BATS_TEST_TMPDIR/pids"
		python3 slow.py "$p" body >"out.body.$i" 3>&- &
		echo $! >>"$BATS_TEST_TMPDIR/pids"
	done
	wait_for bash -c '[ "$(ls started.* | wc -l)" = 6 ]'
	# meanwhile, others are served promptly
	for i in $(seq 10); do
		ptr=$(fl-send --timeout 5 http://127.0.0.1:$p "$D/small.blob")
		run -0 fl-get --timeout 5 -o got "$ptr"
		cmp got "$D/small.blob"
		run -0 curl -sf --max-time 5 http://127.0.0.1:$p/v1/objects
	done
	# and the trickling ones are dropped (--timeout 2: within a few seconds)
	wait_for bash -c '[ "$(cat out.* | grep -c dropped)" = 6 ]'
}

@test "faults: requests with an empty body are freed: SIGTERM stops at once" {
	local p i rc=0
	p=$(free_port)
	serve "$p" st
	# Content-Length: 0 to routes that take no body once held each request
	# forever (leaked, and SIGTERM waited 30 s for them)
	for i in 1 2 3; do
		curl -sf -o /dev/null -d '' http://127.0.0.1:$p/v1/tickets
		curl -s -o /dev/null -X DELETE -H 'Content-Length: 0' \
			http://127.0.0.1:$p/v1/objects/0123456789abcdef
	done
	kill -TERM "$SPID"
	SECONDS=0
	wait "$SPID" || rc=$?
	[ "$rc" = 0 ]
	[ "$SECONDS" -lt 5 ]
}

@test "faults: a request pipelined behind another, with a body, does not wedge the worker" {
	local p
	p=$(free_port)
	serve "$p" st
	# lws once offered such a body's end again and again: the service
	# thread spun and answered no one
	run -0 timeout 10 python3 - "$p" "$D/small.blob" <<'PY'
import socket, sys
blob = open(sys.argv[2], "rb").read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
          b"POST /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(blob) + blob)
try:
    while s.recv(65536):
        pass
except OSError:
    pass
PY
	run -0 curl -sf --max-time 5 http://127.0.0.1:$p/v1/health
	run -0 fl-send --timeout 5 http://127.0.0.1:$p "$D/small.blob"
}

@test "faults: clients that vanish mid-body, mid-reply or mid-watch: every request let go of, SIGTERM stops at once" {
	local p big rc=0
	p=$(free_port)
	serve "$p" st
	big=$(fl-send http://127.0.0.1:$p "$D/move.blob")
	big=${big##*/}
	# Each request must be let go of when lws ends its connection, however
	# it ends: one left holding a freed connection would crash the worker
	# once its reply was ready, and would hold SIGTERM for 30 s.
	run -0 timeout 60 python3 - "$p" "$D/small.blob" "$D/move.blob" "$big" <<'PY'
import base64, os, socket, struct, sys
port, small, big, bigid = int(sys.argv[1]), open(sys.argv[2], "rb").read(), \
    open(sys.argv[3], "rb").read(), sys.argv[4]

def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=10)

def post(n):
    return b"POST /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n

def rst(s):	# close with a reset, not a FIN
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()

for i in range(10):
    end = rst if i % 2 else socket.socket.close
    s = conn(); s.sendall(post(len(big)) + big[: len(big) // 2]); end(s)
    s = conn(); s.sendall(post(len(small))); end(s)
    s = conn(); s.sendall(post(len(big)) + big); end(s)	# before the reply
    s = conn(); s.sendall(b"GET /v1/objects/%s HTTP/1.1\r\nHost: x\r\n\r\n" % bigid.encode())
    s.recv(65536); end(s)
    s = conn()
    s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: %s\r\n\r\n" % base64.b64encode(os.urandom(16)))
    assert s.recv(4096).startswith(b"HTTP/1.1 101")
    end(s)
PY
	run -0 fl-send --timeout 5 http://127.0.0.1:$p "$D/small.blob"
	run -0 curl -sf --max-time 5 http://127.0.0.1:$p/v1/health
	kill -TERM "$SPID"
	SECONDS=0
	wait "$SPID" || rc=$?
	[ "$rc" = 0 ]
	[ "$SECONDS" -lt 10 ]
	# lws announced every connection's end before freeing it
	run ! grep 'without closing' "$BATS_TEST_TMPDIR/serve.log"
}
