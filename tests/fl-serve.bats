#!/usr/bin/env bats
# fl-serve: real servers on loopback ports, curl(1) as the client.

setup_file() {
	load test_helper
	export D="$BATS_FILE_TMPDIR"
	cd "$D" || return 1
	echo "rwtoken-0123456789 read write  # the coordinator" > tokens
	echo "rotoken-0123456789 read" >> tokens
	printf '#!/bin/sh\nexec cat\n' > echo.sh
	printf '#!/bin/sh\nexec sleep 30\n' > hang.sh
	printf '#!/bin/sh\nexec cat /dev/zero\n' > flood.sh
	chmod +x echo.sh hang.sh flood.sh
	fl-pack dataset --header --csv "$FIXTURES/small.csv" -o train.blob
	for i in 1 2 3; do fl-pack init --arch 8,4,relu,2 --seed $i -o m$i.blob; done
	export PA=$(free_port) PB=$(free_port)
	fl-serve -q --name alice --listen 127.0.0.1:$PA --store "$D/sa" --token-file tokens \
		--dataset train="$D/train.blob" --handler echo="$D/echo.sh" \
		--handler hang="$D/hang.sh" --handler flood="$D/flood.sh" \
		--handler-timeout 1 --max-object-bytes 1M 3>&- 2>"$D/a.log" &
	echo $! > "$D/a.pid"
	fl-serve -q --name bob --listen 127.0.0.1:$PB --store "$D/sb" 3>&- 2>"$D/b.log" &
	echo $! > "$D/b.pid"
	wait_for curl -sf http://127.0.0.1:$PA/v1/health
	wait_for curl -sf http://127.0.0.1:$PB/v1/health
}

teardown_file() {
	local rc=0
	stop_server "$(cat "$BATS_FILE_TMPDIR/a.pid")" "$BATS_FILE_TMPDIR/a.log" || rc=1
	stop_server "$(cat "$BATS_FILE_TMPDIR/b.pid")" "$BATS_FILE_TMPDIR/b.log" || rc=1
	return $rc
}

setup() {
	load test_helper
	common_setup
	A=http://127.0.0.1:$PA
	B=http://127.0.0.1:$PB
	RW=(-H "Authorization: Bearer rwtoken-0123456789")
	RO=(-H "Authorization: Bearer rotoken-0123456789")
	J=(-H "Accept: application/json")
}

# code METHOD URL [curl args]: print the HTTP status, the body into ./body
code() {
	local m=$1 u=$2
	shift 2
	curl -s -o body -w '%{http_code}' -X "$m" "$@" "$u"
}

# store URL FILE [curl args]: print the new id
store() {
	local u=$1 f=$2
	shift 2
	curl -sf "${J[@]}" "$@" --data-binary @"$f" "$u/v1/objects" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

@test "fl-serve: health needs no token; info lists datasets without rows" {
	run -0 curl -sf "${J[@]}" "$A/v1/health"
	assert_output '{"ok":true,"name":"alice"}'
	run -0 curl -sf "${J[@]}" "${RO[@]}" "$A/v1/info"
	run -0 python3 -c '
import json,sys
i = json.loads(sys.argv[1])
assert i["name"] == "alice" and i["version"]
d = i["datasets"][0]
assert d["key"] == "train" and d["samples"] > 0 and "shape" in d and "classes" in d, d
assert set(d) <= {"key","samples","shape","classes","targets"}, d
assert "echo" in i["messages"]
' "$output"
	# msgpack by default
	run -0 bash -c "curl -sf -H 'Authorization: Bearer rotoken-0123456789' $A/v1/info | head -c1 | od -An -tx1"
	[[ $output == *8* ]]
}

@test "fl-serve: 401 without a token or with a wrong one, 403 for a read-only token storing" {
	[ "$(code GET "$A/v1/objects")" = 401 ]
	[ "$(code GET "$A/v1/objects" -H 'Authorization: Bearer nope-nope-nope')" = 401 ]
	[ "$(code POST "$A/v1/objects" "${RO[@]}" --data-binary @"$D/m1.blob")" = 403 ]
	[ "$(code DELETE "$A/v1/objects/0123456789abcdef" "${RO[@]}")" = 403 ]
	[ "$(code GET "$A/v1/objects" "${RO[@]}")" = 200 ]
}

@test "fl-serve: store, list, fetch, header, tag, latest, delete" {
	local id1 id2
	id1=$(store "$A" "$D/m1.blob" "${RW[@]}")
	id2=$(store "$A" "$D/m2.blob" "${RW[@]}")
	[[ $id1 =~ ^[0-9a-f]{16}$ ]]
	curl -sf "${RO[@]}" -o got "$A/v1/objects/$id1"
	cmp got "$D/m1.blob"
	run -0 fl-pack verify got
	run -0 curl -sf "${J[@]}" "${RO[@]}" "$A/v1/objects"
	run -0 python3 -c '
import json,sys
o = json.loads(sys.argv[1])["objects"]
ids = [x["id"] for x in o]
assert ids.index(sys.argv[3]) < ids.index(sys.argv[2]), ids   # newest first
x = o[ids.index(sys.argv[2])]
assert x["kind"] == "model" and x["bytes"] > 0 and "created" in x and "meta" in x
' "$output" "$id1" "$id2"
	run -0 curl -sf "${J[@]}" "${RO[@]}" "$A/v1/objects/$id1/header"
	assert_output --partial '"name":"0.weight"'
	[ "$(code PUT "$A/v1/objects/$id1/tags/best" "${RW[@]}")" = 204 ]
	curl -sf "${RO[@]}" -o got "$A/v1/tags/best"
	cmp got "$D/m1.blob"
	[ "$(code PUT "$A/v1/objects/$id2/tags/best" "${RW[@]}")" = 204 ]
	curl -sf "${RO[@]}" -o got "$A/v1/tags/best"
	cmp got "$D/m2.blob"
	curl -sf "${RO[@]}" -o got "$A/v1/latest?kind=model"
	cmp got "$D/m2.blob"
	id3=$(store "$A" "$D/m3.blob" "${RW[@]}" -G -d tag=tagged --data-urlencode x=1 2>/dev/null || true)
	[ "$(code DELETE "$A/v1/objects/$id1" "${RW[@]}")" = 204 ]
	[ "$(code GET "$A/v1/objects/$id1" "${RO[@]}")" = 404 ]
	[ "$(code DELETE "$A/v1/objects/$id1" "${RW[@]}")" = 404 ]
	[ "$(code GET "$A/v1/tags/nosuchtag" "${RO[@]}")" = 404 ]
}

@test "fl-serve: the listing comes in pages, with filters and a cursor" {
	local st=$D/paged p id
	# 1,203 objects put in the store's directory by hand, as a worker finds
	# its objects after a restart: three of them datasets.
	mkdir -p "$st/objects"
	for i in $(seq 1000 2199); do
		cp "$D/m1.blob" "$st/objects/000000000000$i"
	done
	for i in 1 2 3; do cp "$D/train.blob" "$st/objects/dddddddddddd000$i"; done
	p=$(free_port)
	fl-serve -q --name paged --listen 127.0.0.1:$p --store "$st" 3>&- 2>"$D/paged.log" &
	echo $! > "$D/paged.pid"
	wait_for curl -sf http://127.0.0.1:$p/v1/health
	curl -sf "${J[@]}" "http://127.0.0.1:$p/v1/objects" > page1
	next=$(python3 -c '
import json,sys
d = json.load(open("page1"))
assert len(d["objects"]) == 1000 and d["next"], len(d["objects"])
print(d["next"])')
	curl -sf "${J[@]}" "http://127.0.0.1:$p/v1/objects?after=$next" > page2
	run -0 python3 -c '
import json,sys
a, b = json.load(open("page1")), json.load(open("page2"))
ids = [o["id"] for o in a["objects"] + b["objects"]]
assert "next" not in b and len(ids) == 1203 and len(set(ids)) == 1203, len(ids)
'
	run -0 curl -sf "${J[@]}" "http://127.0.0.1:$p/v1/objects?kind=dataset&limit=2"
	next=$(python3 -c '
import json,sys
d = json.loads(sys.argv[1])
assert [o["kind"] for o in d["objects"]] == ["dataset"] * 2 and d["next"], d
print(d["next"])' "$output")
	run -0 curl -sf "${J[@]}" "http://127.0.0.1:$p/v1/objects?kind=dataset&limit=2&after=$next"
	run -0 python3 -c '
import json,sys
d = json.loads(sys.argv[1])
assert len(d["objects"]) == 1 and "next" not in d, d' "$output"
	[ "$(code GET "http://127.0.0.1:$p/v1/objects?limit=0")" = 400 ]
	[ "$(code GET "http://127.0.0.1:$p/v1/objects?limit=x")" = 400 ]
	[ "$(code GET "http://127.0.0.1:$p/v1/objects?after=nope")" = 400 ]
	grep -q cursor body
	[ "$(code GET "http://127.0.0.1:$p/v1/objects?tag=../x")" = 400 ]
	# fl-get --list follows the pages: every object once.
	fl-get --list --json "http://127.0.0.1:$p" > all
	run -0 python3 -c '
import json,sys
ids = [o["id"] for o in json.load(open("all"))["objects"]]
assert len(ids) == 1203 and len(set(ids)) == 1203, len(ids)'

	run -0 fl-get --list "http://127.0.0.1:$p"
	[ "${#lines[@]}" = 1204 ]
	# By tag and by "newest", pointers resolve with one short listing.
	id=0000000000001500
	[ "$(code PUT "http://127.0.0.1:$p/v1/objects/$id/tags/mid")" = 204 ]
	run -0 curl -sf "${J[@]}" "http://127.0.0.1:$p/v1/objects?tag=mid"
	assert_output --partial "\"id\":\"$id\""
	echo "paged http://127.0.0.1:$p" > paged.workers
	FL_WORKERS=paged.workers run -0 fl-get --delete paged/mid
	[ "$(code GET "http://127.0.0.1:$p/v1/objects/$id")" = 404 ]
	stop_server "$(cat "$D/paged.pid")" "$D/paged.log"
}

@test "fl-serve: store with ?tag= and fetch by the tag" {
	curl -sf "${RW[@]}" --data-binary @"$D/m3.blob" "$A/v1/objects?tag=t3" >/dev/null
	curl -sf "${RO[@]}" -o got "$A/v1/tags/t3"
	cmp got "$D/m3.blob"
	[ "$(code POST "$A/v1/objects?tag=../x" "${RW[@]}" --data-binary @"$D/m3.blob")" = 400 ]
}

@test "fl-serve: unknown object 404, ids like ../x 400, unknown route 404" {
	[ "$(code GET "$A/v1/objects/0123456789abcdef" "${RO[@]}")" = 404 ]
	# lws resolves dot segments before routing: 404, never a file outside
	run code GET "$A/v1/objects/..%2F..%2Fetc%2Fpasswd" "${RO[@]}"
	[[ $output == 40[04] ]]
	run code GET "$A/v1/objects/../x" --path-as-is "${RO[@]}"
	[[ $output == 40[04] ]]
	run code GET "$A/v1/objects/..%2Fx" "${RO[@]}"
	[[ $output == 40[04] ]]
	[ "$(code GET "$A/v1/objects/0123456789ABCDEF" "${RO[@]}")" = 400 ]
	[ "$(code GET "$A/v1/objects/..x" "${RO[@]}")" = 400 ]
	[ "$(code GET "$A/v1/nothing" "${RO[@]}")" = 404 ]
	grep -q error body
}

@test "fl-serve: an oversized body gets 413 and nothing is stored" {
	local before after
	before=$(ls "$D/sa/objects" | wc -l)
	head -c 3000000 /dev/zero > big
	[ "$(code POST "$A/v1/objects" "${RW[@]}" --data-binary @big)" = 413 ]
	after=$(ls "$D/sa/objects" | wc -l)
	[ "$before" = "$after" ]
}

@test "fl-serve: a corrupt blob is refused with 400 and nothing is stored" {
	local before after
	before=$(ls "$D/sa/objects" | wc -l)
	cp "$D/m1.blob" bad.blob
	flip_byte bad.blob $(($(stat -c %s bad.blob) - 70))
	[ "$(code POST "$A/v1/objects" "${RW[@]}" "${J[@]}" --data-binary @bad.blob)" = 400 ]
	grep -Eq 'crc|padding' body
	head -c 100 "$D/m1.blob" > short.blob
	[ "$(code POST "$A/v1/objects" "${RW[@]}" --data-binary @short.blob)" = 400 ]
	cat "$D/m1.blob" "$D/m2.blob" > two.blob
	[ "$(code POST "$A/v1/objects" "${RW[@]}" --data-binary @two.blob)" = 400 ]
	after=$(ls "$D/sa/objects" | wc -l)
	[ "$before" = "$after" ]
	[ -z "$(ls "$D/sa/tmp")" ]
}

@test "fl-serve: a chunked body or none gets 411 saying to send a Content-Length" {
	local before after
	before=$(ls "$D/sa/objects" | wc -l)
	[ "$(code POST "$A/v1/objects" "${RW[@]}" "${J[@]}" -H 'Transfer-Encoding: chunked' \
	    --data-binary @"$D/m1.blob")" = 411 ]
	grep -q 'Content-Length: chunked request bodies' body
	after=$(ls "$D/sa/objects" | wc -l)
	[ "$before" = "$after" ]
	# the connection was closed, the server serves on
	[ "$(code GET "$A/v1/health")" = 200 ]
	# no Content-Length at all: no body, not an empty blob
	[ "$(code POST "$A/v1/objects" "${RW[@]}" "${J[@]}")" = 411 ]
	grep -q 'send the blob with a Content-Length' body
	[ "$before" = "$(ls "$D/sa/objects" | wc -l)" ]
	[ -z "$(ls "$D/sa/tmp")" ]
}

@test "fl-serve: a blob of several MiB goes in and out whole, from a cold page cache too" {
	local id
	fl-pack init --arch 1500,1500 --seed 4 -o big.blob	# 9 MB: many pieces
	id=$(store "$B" big.blob)
	curl -sf -o got "$B/v1/objects/$id"
	cmp got big.blob
	# Out of the page cache, the file is read on a worker thread.
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$D/sb/objects/$id"
	curl -sf -o got "$B/v1/objects/$id"
	cmp got big.blob
	curl -sf -X DELETE "$B/v1/objects/$id"
}

@test "fl-serve: custom messages: a reply, an unknown name, a hang, a flood" {
	echo hello > msg
	run -0 curl -sf "${RW[@]}" --data-binary @msg "$A/v1/messages/echo"
	assert_output hello
	[ "$(code POST "$A/v1/messages/nope" "${RW[@]}" "${J[@]}" -d x)" = 404 ]
	grep -q "no handler" body
	SECONDS=0
	[ "$(code POST "$A/v1/messages/hang" "${RW[@]}" -d x)" = 504 ]
	[ $SECONDS -lt 5 ]
	[ "$(code POST "$A/v1/messages/flood" "${RW[@]}" "${J[@]}" -d x)" = 502 ]
	grep -q exceeds body
	# still serving
	curl -sf "$A/v1/health" >/dev/null
}

@test "fl-serve: a ticket and a push move an object to another worker" {
	local id ticket newid
	id=$(store "$A" "$D/m1.blob" "${RW[@]}")
	ticket=$(curl -sf "${J[@]}" -X POST "$B/v1/tickets" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["ticket"])')
	run -0 curl -sf "${J[@]}" "${RW[@]}" -H 'Content-Type: application/json' \
		-d "{\"url\": \"$B\", \"ticket\": \"$ticket\", \"move\": true}" "$A/v1/objects/$id/push"
	newid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$output")
	curl -sf -o got "$B/v1/objects/$newid"
	cmp got "$D/m1.blob"
	[ "$(code GET "$A/v1/objects/$id" "${RO[@]}")" = 404 ]
	# a ticket is good once
	[ "$(code POST "$B/v1/objects" -H "Authorization: Ticket $ticket" --data-binary @"$D/m2.blob")" = 201 ]
}

@test "fl-serve: tickets stand in for a token once on a worker with tokens" {
	local ticket
	ticket=$(curl -sf "${J[@]}" "${RW[@]}" -X POST "$A/v1/tickets" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["ticket"])')
	[ "$(code POST "$A/v1/objects" -H "Authorization: Ticket $ticket" --data-binary @"$D/m2.blob")" = 201 ]
	[ "$(code POST "$A/v1/objects" -H "Authorization: Ticket $ticket" --data-binary @"$D/m2.blob")" = 403 ]
	[ "$(code GET "$A/v1/objects" -H "Authorization: Ticket $ticket")" = 401 ]
}

@test "fl-serve: /v1/events reports stored, tagged and deleted objects" {
	python3 "$FIXTURES/wsevents.py" "$PA" rotoken-0123456789 3 > events 3>&- &
	local pid=$! id
	wait_for test -e ready
	id=$(store "$A" "$D/m3.blob" "${RW[@]}")
	curl -sf -X PUT "${RW[@]}" "$A/v1/objects/$id/tags/ev"
	curl -sf -X DELETE "${RW[@]}" "$A/v1/objects/$id"
	wait "$pid"
	run python3 -c 'import json, sys
print(" ".join(json.loads(l)["event"] for l in open("events")))'
	assert_output "stored tagged deleted"
}

@test "fl-serve: 64 concurrent clients store and fetch" {
	local i
	for i in $(seq 64); do
		head -c $((i * 100)) /dev/urandom > "pay$i"
	done
	cat > client.sh <<'SH'
#!/bin/sh
# store a blob, fetch it back, compare
i=$1
fl-pack init --arch "$((i + 2)),3" --seed "$i" -o "b$i.blob" || exit 1
id=$(curl -sf -H "Authorization: Bearer rwtoken-0123456789" -H 'Accept: application/json' \
	--data-binary @"b$i.blob" "$2/v1/objects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || exit 1
curl -sf -H "Authorization: Bearer rwtoken-0123456789" -o "g$i.blob" "$2/v1/objects/$id" || exit 1
cmp "b$i.blob" "g$i.blob"
SH
	chmod +x client.sh
	local pids=() fail=0
	for i in $(seq 64); do
		./client.sh "$i" "$A" 3>&- &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || fail=$((fail + 1))
	done
	[ "$fail" = 0 ]
}

@test "fl-serve: kill -9 mid-upload leaves no partial object; earlier objects intact" {
	local p id1 id2 s=$BATS_TEST_TMPDIR/sc
	p=$(free_port)
	fl-serve -q --listen 127.0.0.1:$p --store "$s" 3>&- 2>/dev/null &
	local pid=$!
	wait_for curl -sf http://127.0.0.1:$p/v1/health
	id1=$(store http://127.0.0.1:$p "$D/m1.blob")
	id2=$(store http://127.0.0.1:$p "$D/m2.blob")
	fl-pack init --arch 1000,1000 -o huge.blob
	curl -s --limit-rate 200k --data-binary @huge.blob http://127.0.0.1:$p/v1/objects >/dev/null 3>&- &
	local cpid=$!
	wait_for bash -c "ls '$s/tmp' | grep -q ."
	sleep 0.3
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	kill "$cpid" 2>/dev/null || true
	[ "$(ls "$s/objects" | wc -l)" = 2 ]
	fl-serve -q --listen 127.0.0.1:$p --store "$s" 3>&- 2>/dev/null &
	pid=$!
	wait_for curl -sf http://127.0.0.1:$p/v1/health
	[ -z "$(ls "$s/tmp")" ]
	curl -sf -o g1 http://127.0.0.1:$p/v1/objects/$id1
	curl -sf -o g2 http://127.0.0.1:$p/v1/objects/$id2
	run -0 fl-pack verify g1 g2
	cmp g1 "$D/m1.blob"
	kill "$pid"
	wait "$pid"
}

@test "fl-serve: SIGTERM exits 0 and keeps what it acknowledged" {
	local p s=$BATS_TEST_TMPDIR/sd id
	p=$(free_port)
	fl-serve -q --listen 127.0.0.1:$p --store "$s" 3>&- 2>/dev/null &
	local pid=$!
	wait_for curl -sf http://127.0.0.1:$p/v1/health
	id=$(store http://127.0.0.1:$p "$D/m1.blob")
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	[ "$rc" = 0 ]
	cmp "$s/objects/$id" "$D/m1.blob"
}

@test "fl-serve: TLS with a self-made CA" {
	command -v openssl >/dev/null || skip "no openssl"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
		-subj /CN=testca 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
		-days 2 -extfile ext 2>/dev/null
	local p pid
	p=$(free_port)
	fl-serve -q --listen 127.0.0.1:$p --store st --tls-cert srv.pem --tls-key srv.key 3>&- 2>log &
	pid=$!
	wait_for curl -sf --cacert ca.pem https://localhost:$p/v1/health
	id=$(store https://localhost:$p "$D/m1.blob" --cacert ca.pem)
	curl -sf --cacert ca.pem -o got https://localhost:$p/v1/objects/$id
	cmp got "$D/m1.blob"
	run curl -sf https://localhost:$p/v1/health
	[ "$status" -ne 0 ]	# not trusted without the CA
	kill "$pid"
	wait "$pid"
}

@test "fl-serve: refuses to listen beyond loopback without a token file" {
	run -2 --separate-stderr fl-serve --listen 0.0.0.0:$(free_port) --store st
	[[ $stderr == *"--token-file"* ]]
	run -2 fl-serve --listen nonsense --store st
	run -2 fl-serve --handler bad --store st
	run -2 fl-serve --tls-cert x --store st
	run -0 fl-serve --help
	assert_output --partial --max-object-bytes
}
