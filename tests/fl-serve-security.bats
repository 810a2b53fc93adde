#!/usr/bin/env bats
# fl-serve: the claims of SECURITY.md that no other suite checks: rights per
# route, datasets that never leave, handlers without a shell, header and
# body bounds, the events socket's token, the limits and their defaults,
# where a worker listens.

setup_file() {
	load test_helper
	export D="$BATS_FILE_TMPDIR"
	cd "$D" || return 1
	echo "rwtoken-0123456789 read write" > tokens
	echo "rotoken-0123456789 read" >> tokens
	echo "wotoken-0123456789 write" >> tokens
	printf '#!/bin/sh\nexec cat\n' > echo.sh
	printf '#!/bin/sh\necho ran >> "%s/count.runs"\nexec wc -c\n' "$D" > count.sh
	chmod +x echo.sh count.sh
	fl-pack dataset --header --csv "$FIXTURES/small.csv" -o train.blob
	fl-pack init --arch 4,3 --seed 1 -o m.blob
	export P=$(free_port)
	fl-serve -q --name sec --listen 127.0.0.1:$P --store "$D/st" --token-file tokens \
		--dataset train="$D/train.blob" --handler echo="$D/echo.sh" \
		--handler count="$D/count.sh" 3>&- 2>"$D/log" &
	echo $! > "$D/pid"
	wait_for curl -sf http://127.0.0.1:$P/v1/health
}

teardown_file() {
	kill "$(cat "$BATS_FILE_TMPDIR/pid")" 2>/dev/null || true
}

teardown() {
	# a server of the test's own that a failed test left running
	[ -z "${OWN:-}" ] || kill "$OWN" 2>/dev/null || true
}

# own ARGS...: a server of this test's own, with the token file and the
# dataset of setup_file, on port $OP (pid $OWN, log ./own.log)
own() {
	OP=$(free_port)
	fl-serve -q --name own --listen 127.0.0.1:$OP --store "$BATS_TEST_TMPDIR/own.st" \
		--token-file "$D/tokens" --dataset train="$D/train.blob" "$@" \
		3>&- 2>"$BATS_TEST_TMPDIR/own.log" &
	OWN=$!
	wait_for curl -sf http://127.0.0.1:$OP/v1/health
}

# stop_own: stop it; it must exit 0 (and be clean under VALGRIND)
stop_own() {
	stop_server "$OWN" "$BATS_TEST_TMPDIR/own.log"
	OWN=
}

setup() {
	load test_helper
	common_setup
	A=http://127.0.0.1:$P
	RW=(-H "Authorization: Bearer rwtoken-0123456789")
	RO=(-H "Authorization: Bearer rotoken-0123456789")
}

# code METHOD PATH [curl args]: the HTTP status; the body into ./body
code() {
	local m=$1 u=$2
	shift 2
	curl -s -o body -w '%{http_code}' -X "$m" "$@" "$A$u"
}

@test "security: no token is 401 and a read token 403 on every route that writes" {
	local id
	id=$(curl -sf "${RW[@]}" -H 'Accept: application/json' --data-binary @"$D/m.blob" \
		"$A/v1/objects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	for r in "GET /v1/info" "GET /v1/objects" "GET /v1/objects/$id" \
		"GET /v1/objects/$id/header" "GET /v1/latest" "POST /v1/objects" \
		"DELETE /v1/objects/$id" "PUT /v1/objects/$id/tags/t" "POST /v1/objects/$id/push" \
		"POST /v1/tickets" "POST /v1/messages/echo" "POST /v1/fit/train" \
		"POST /v1/eval/train" "POST /v1/aggregate"; do
		[ "$(code ${r% *} "${r#* }" -d x)" = 401 ] || { echo "$r without a token"; false; }
	done
	for r in "POST /v1/objects" "DELETE /v1/objects/$id" "PUT /v1/objects/$id/tags/t" \
		"POST /v1/objects/$id/push" "POST /v1/tickets" "POST /v1/messages/echo" \
		"POST /v1/fit/train" "POST /v1/eval/train" "POST /v1/aggregate"; do
		[ "$(code ${r% *} "${r#* }" "${RO[@]}" --data-binary @"$D/m.blob")" = 403 ] ||
			{ echo "$r with a read token"; false; }
	done
	# a write-only token may store, but not read, nor push (which reads)
	local WO=(-H "Authorization: Bearer wotoken-0123456789")
	[ "$(code GET "/v1/objects/$id" "${WO[@]}")" = 403 ]
	grep -q "may not read" body
	[ "$(code POST "/v1/objects/$id/push" "${WO[@]}" -d '{"url": "http://127.0.0.1:1", "ticket": "x"}')" = 403 ]
	grep -q "may not read" body
	[ "$(code POST /v1/objects "${WO[@]}" --data-binary @"$D/m.blob")" = 201 ]
	for r in "/v1/info" "/v1/objects" "/v1/objects/$id" "/v1/objects/$id/header" "/v1/latest"; do
		[ "$(code GET "$r" "${RO[@]}")" = 200 ] || { echo "$r with a read token"; false; }
	done
	# the object is still there: nothing above wrote
	curl -sf "${RO[@]}" -o got "$A/v1/objects/$id"
	cmp got "$D/m.blob"
}

@test "security: a dataset's rows never leave the worker" {
	# the bytes of the dataset's tensors, to look for in every reply
	python3 - "$D/train.blob" <<'PY' > needle
import struct, sys
b = open(sys.argv[1], "rb").read()
hlen = struct.unpack("<I", b[8:12])[0]
start = (12 + hlen + 63) // 64 * 64
print(b[start:start + 16].hex())
PY
	local id replies=()
	id=$(curl -sf "${RW[@]}" -H 'Accept: application/json' --data-binary @"$D/m.blob" \
		"$A/v1/objects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	[ "$(code GET /v1/info "${RO[@]}" -H 'Accept: application/json')" = 200 ]
	run -0 python3 -c '
import json, sys
d = json.load(open("body"))["datasets"]
assert [x["key"] for x in d] == ["train"] and set(d[0]) <= {"key", "samples", "shape", "classes", "targets"}, d
'
	cp body r.info
	[ "$(code GET /v1/latest?kind=dataset "${RO[@]}")" = 404 ]
	[ "$(code GET /v1/tags/train "${RO[@]}")" = 404 ]
	[ "$(code GET /v1/objects/train "${RO[@]}")" = 400 ]
	[ "$(code GET /v1/objects "${RO[@]}")" = 200 ]
	cp body r.list
	[ "$(code POST "/v1/eval/train?model=$id" "${RW[@]}" -H 'Content-Length: 0' \
		-H 'Accept: application/json')" = 200 ]
	run -0 python3 -c '
import json
e = json.load(open("body"))
assert set(e) <= {"dataset", "loss", "accuracy", "samples", "model"}, e
'
	cp body r.eval
	[ "$(code POST "/v1/fit/train?model=$id&epochs=1" "${RW[@]}" -H 'Content-Length: 0' \
		-H 'Accept: application/json')" = 201 ]
	cp body r.fit
	for f in r.*; do
		! od -An -tx1 -v "$f" | tr -d ' \n' | grep -q "$(cat needle)" ||
			{ echo "$f holds the dataset's bytes"; false; }
	done
}

@test "security: a handler is a configured program run without a shell" {
	local body='$(touch pwned1); `touch pwned2`; touch pwned3 | sh'
	run -0 curl -sf "${RW[@]}" --data-binary "$body" "$A/v1/messages/echo"
	[ "$output" = "$body" ]
	[ ! -e "$D/pwned1" ] && [ ! -e "$D/pwned2" ] && [ ! -e "$D/pwned3" ]
	[ ! -e pwned1 ] && [ ! -e pwned2 ] && [ ! -e pwned3 ]
	[ "$(code POST /v1/messages/sh "${RW[@]}" -d x)" = 404 ]
	[ "$(code POST "/v1/messages/..%2Fecho.sh" "${RW[@]}" -d x)" = 404 ]
	[ "$(code POST "/v1/messages/$D/echo.sh" "${RW[@]}" -d x)" = 404 ]
}

@test "security: headers past 8 KiB and push or aggregate bodies past 64 KiB are refused" {
	local big status
	big=$(head -c 10000 /dev/zero | tr '\0' a)
	status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$A/v1/health" || true)
	[ "$status" != 200 ]
	head -c 70000 /dev/zero > big.body
	[ "$(code POST /v1/objects/0123456789abcdef/push "${RW[@]}" --data-binary @big.body)" = 404 ]
	local id
	id=$(curl -sf "${RW[@]}" -H 'Accept: application/json' --data-binary @"$D/m.blob" \
		"$A/v1/objects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	[ "$(code POST "/v1/objects/$id/push" "${RW[@]}" --data-binary @big.body)" = 413 ]
	[ "$(code POST /v1/aggregate "${RW[@]}" --data-binary @big.body)" = 413 ]
	curl -sf "$A/v1/health" >/dev/null
}

@test "security: a plain connection is never upgraded to HTTP/2 (h2c): 400, closed" {
	# lws 4.1 took "Upgrade: h2c": many requests on one plain connection,
	# which the one request per connection (SECURITY.md) relies on never
	# happening
	run -0 python3 - "$P" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
          b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print(got.split(b"\r\n")[0].decode())
print(b"h2c" in got and b"TLS only" in got)
PY
	[[ ${lines[0]} == "HTTP/1."?" 400 "* ]]
	[ "${lines[1]}" = True ]
	run curl -sf --http2 "$A/v1/health"
	[ "$status" -ne 0 ]
	[ "$(code GET /v1/health --http2 -H 'Accept: application/json')" = 400 ]
	grep -q 'HTTP/2 is served over TLS only' body
	# HTTP/1.1, and the WebSocket upgrade, as before
	[ "$(code GET /v1/health)" = 200 ]
}

@test "security: /v1/events needs a read token" {
	cat > ws.py <<'PY'
import base64, os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
auth = "Authorization: Bearer %s\r\n" % sys.argv[2] if len(sys.argv) > 2 else ""
s.sendall(("GET /v1/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
    % (base64.b64encode(os.urandom(16)).decode(), auth)).encode())
r = s.recv(200).split(b"\r\n")[0]
print(r.decode() if r else "closed")
PY
	run -0 python3 ws.py "$P"
	[[ $output != *" 101 "* ]]
	run -0 python3 ws.py "$P" wrong-token-0123
	[[ $output != *" 101 "* ]]
	run -0 python3 ws.py "$P" rotoken-0123456789
	[[ $output == *" 101 "* ]]
}

@test "security: a pickle inside an npz is refused, never run" {
	# an object array, as numpy saves one: a pickle that would run a command
	python3 - <<'PY'
import os, pickle, struct, zipfile
class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))
def npy(descr, shape, payload):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + payload
with zipfile.ZipFile("evil.npz", "w") as z:
    z.writestr("0.weight.npy", npy("|O", "(1,)", pickle.dumps([Evil()])))
PY
	run -10 --separate-stderr fl-pack import -o out.blob evil.npz
	[[ $stderr == *"evil.npz: 0.weight: dtype '|O' is not supported"* ]]
	[ ! -e pwned ] && [ ! -e out.blob ]
}

@test "security: a message body of 16 MiB is taken, one byte more is 413 and runs nothing" {
	head -c $((16 << 20)) /dev/zero > 16m
	run -0 curl -sf "${RW[@]}" --data-binary @16m "$A/v1/messages/count"
	[ "$output" = $((16 << 20)) ]
	[ "$(wc -l < "$D/count.runs")" = 1 ]
	echo x >> 16m
	[ "$(code POST /v1/messages/count "${RW[@]}" --data-binary @16m)" = 413 ]
	grep -q "exceeds the limit of 16777216" body
	[ "$(wc -l < "$D/count.runs")" = 1 ]
	curl -sf "$A/v1/health" >/dev/null
}

@test "security: --max-store-bytes: a store past it is 507, also for uploads at once; nothing partial; room again after a delete" {
	local size ids=() id i
	size=$(stat -c %s "$D/m.blob")
	own --max-store-bytes $((3 * size + size / 2))
	A=http://127.0.0.1:$OP
	# 8 at once, room for 3: three are stored, whichever they are
	local pids=()
	for i in 1 2 3 4 5 6 7 8; do
		curl -s -o "r.$i" -w '%{http_code}\n' "${RW[@]}" -H 'Accept: application/json' \
			--data-binary @"$D/m.blob" "$A/v1/objects" > "c.$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	[ "$(cat c.* | grep -c 201)" = 3 ]
	[ "$(cat c.* | grep -c 507)" = 5 ]
	for i in 1 2 3 4 5 6 7 8; do
		[ "$(cat "c.$i")" = 201 ] || continue
		ids+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "r.$i")")
	done
	[ "$(code POST /v1/objects "${RW[@]}" --data-binary @"$D/m.blob")" = 507 ]
	grep -q "store full: $((3 * size)) of $((3 * size + size / 2)) bytes used" body
	# fl-send says so and exits 5 (FL_ELIMIT)
	echo "own $A $D/tokens" > "$FL_WORKERS"
	run -5 --separate-stderr fl-send own "$D/m.blob"
	[[ $stderr == *"store full"* ]]
	[ -z "$(ls own.st/tmp)" ]
	[ "$(ls own.st/objects | wc -l)" = 3 ]
	for id in "${ids[@]}"; do
		curl -sf "${RO[@]}" -o got "$A/v1/objects/$id"
		cmp got "$D/m.blob"
	done
	[ "$(code DELETE "/v1/objects/${ids[0]}" "${RW[@]}")" = 204 ]
	[ "$(code POST /v1/objects "${RW[@]}" --data-binary @"$D/m.blob")" = 201 ]
	stop_own
}

@test "security: tickets: 1024 open at most, then 503; each one upload, for 600 s" {
	own
	run -0 python3 - "$OP" "$D/m.blob" <<'PY'
import http.client, json, sys, time
port, blob = int(sys.argv[1]), open(sys.argv[2], "rb").read()
def req(method, path, auth, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body, {"Authorization": auth, "Accept": "application/json"})
    r = c.getresponse()
    out = (r.status, json.loads(r.read() or b"null"))
    c.close()
    return out
tok = "Bearer rwtoken-0123456789"
tickets = []
for i in range(1024):
    st, v = req("POST", "/v1/tickets", tok)
    assert st == 201, (i, st, v)
    assert abs(v["expires"] - time.time() - 600) < 30, v
    tickets.append(v["ticket"])
assert len(set(tickets)) == 1024
st, v = req("POST", "/v1/tickets", tok)
assert st == 503 and v["error"] == "too many open tickets", (st, v)
t = "Ticket " + tickets[500]
st, v = req("POST", "/v1/objects", t, blob)
assert st == 201, (st, v)
st, v = req("POST", "/v1/objects", t, blob)
assert st == 403 and "used" in v["error"], (st, v)
st, v = req("GET", "/v1/objects/" + v.get("id", "0123456789abcdef"), t)
assert st == 401, st		# never for reading
# the used ticket made room for one more, one only
assert req("POST", "/v1/tickets", tok)[0] == 201
assert req("POST", "/v1/tickets", tok)[0] == 503
print("ok")
PY
	[ "$output" = ok ]
	stop_own
}

@test "security: --max-connections (default 256): connections past it are not served until one closes" {
	cat > hold.py <<'PY'
import socket, subprocess, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
def served(wait=5):
    return subprocess.run(["curl", "-s", "-m", str(wait), "-o", "/dev/null", "-w", "%{http_code}",
        "http://127.0.0.1:%d/v1/health" % port], capture_output=True, text=True).stdout
held = []
for i in range(n - 1):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")	# headers never finished
    held.append(s)
time.sleep(0.1)
print("n-1 held:", served())
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
held.append(s)
time.sleep(0.1)
print("n held:", served(0.5))	# a request it serves takes milliseconds
held.pop(0).close()
time.sleep(0.1)
print("one closed:", served())
PY
	run -0 python3 hold.py "$P" 256
	[ "${lines[0]}" = "n-1 held: 200" ]
	[ "${lines[1]}" = "n held: 000" ]
	[ "${lines[2]}" = "one closed: 200" ]
	own --max-connections 4
	run -0 python3 hold.py "$OP" 4
	[ "${lines[0]}" = "n-1 held: 200" ]
	[ "${lines[1]}" = "n held: 000" ]
	[ "${lines[2]}" = "one closed: 200" ]
	[ "$(code GET /v1/info "${RO[@]}" -H 'Accept: application/json')" = 200 ]
	grep -q '"connections":256' body
	stop_own
}

@test "security: --max-fits: fits past the running and 16 queued get 503 with Retry-After" {
	own --max-fits 1
	run -0 python3 - "$OP" "$D/m.blob" <<'PY'
import http.client, socket, sys, time
port, blob = int(sys.argv[1]), open(sys.argv[2], "rb").read()
head = ("POST /v1/fit/train HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rwtoken-0123456789\r\n"
        "Content-Length: %d\r\n\r\n" % len(blob)).encode()
def fit():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v1/fit/train?epochs=1", blob,
              {"Authorization": "Bearer rwtoken-0123456789", "Accept": "application/json"})
    r = c.getresponse()
    out = (r.status, r.getheader("Retry-After"), r.read())
    c.close()
    return out
# 17 fits admitted whose models are still uploading: 1 running + 16 queued
held = []
for i in range(17):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head + blob[:100])
    held.append(s)
time.sleep(0.3)
st, ra, body = fit()
assert st == 503 and ra == "10" and b"too many fits" in body, (st, ra, body)
for s in held:
    s.close()
# their slots come back as the server sees them go
for i in range(100):
    st, ra, body = fit()
    if st != 503:
        break
    time.sleep(0.1)
assert st == 201, (st, body)
print("ok")
PY
	[ "$output" = ok ]
	[ -z "$(ls own.st/tmp)" ]
	stop_own
}

@test "security: a WebSocket client that does not read loses the events that find 256 queued, and only those" {
	cat > slow.py <<'PY'
import base64, http.client, json, os, socket, subprocess, sys, time
port, blob = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(("GET /v1/events?format=json HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
           "Authorization: Bearer rotoken-0123456789\r\n\r\n"
           % base64.b64encode(os.urandom(16)).decode()).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
assert b" 101 " in buf.split(b"\r\n")[0], buf
buf = buf.split(b"\r\n\r\n", 1)[1]
# 3000 uploads, an event each, while this client reads nothing (a fit's
# epochs would not do: their events are at most 20 a second)
N = 3000
up = http.client.HTTPConnection("127.0.0.1", port)
data = open(blob, "rb").read()
ids = []
for i in range(N):
    up.request("POST", "/v1/objects", body=data,
               headers={"Authorization": "Bearer rwtoken-0123456789",
                        "Accept": "application/json"})
    r = up.getresponse()
    body = r.read()
    assert r.status == 201, (r.status, body)
    ids.append(json.loads(body)["id"])
up.close()
time.sleep(0.1)
s.settimeout(0.5)
def events():
    global buf
    out = []
    while True:
        while len(buf) >= 2:
            ln, off = buf[1] & 127, 2
            if ln == 126:
                if len(buf) < 4:
                    break
                ln, off = int.from_bytes(buf[2:4], "big"), 4
            if len(buf) < off + ln:
                break
            out.append(json.loads(buf[off:off + ln]))
            buf = buf[off + ln:]
        try:
            d = s.recv(65536)
        except socket.timeout:
            return out
        assert d, "the server closed the socket"
        buf += d
got = [e["id"] for e in events() if e["event"] == "stored"]
# in order, with gaps: the events that came while 256 waited were dropped;
# the 256 that waited, and those the socket's buffers held, arrive. The
# worker fixes a watcher's send buffer at 128 KiB: left to grow, the
# kernel's held every event on a CI run.
it = iter(ids)
assert all(g in it for g in got), "out of order"
assert got[0] == ids[0], got[:3]
assert 256 <= len(got) < N - 256, len(got)
print(len(got), "of", N, "events")
# the client was not cut off: a new event reaches it
subprocess.run(["curl", "-sf", "-o", "/dev/null", "-H", "Authorization: Bearer rwtoken-0123456789",
    "--data-binary", "@" + blob, "http://127.0.0.1:%d/v1/objects" % port], check=True)
time.sleep(0.3)
assert [e["event"] for e in events()] == ["stored"]
PY
	# a server of its own: the 3000 objects stay out of the other tests
	own
	# not through run: on a failure, bats shows what it printed
	python3 slow.py "$OP" "$D/m.blob"
	stop_own
}

@test "security: beyond loopback only with a token file or --insecure; loopback by default" {
	local addr
	# an address of this machine that is not loopback
	addr=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }')
	for a in 0.0.0.0 ${addr:+"$addr"} 127.0.0.1.example.net; do
		run -2 --separate-stderr fl-serve --listen "$a:$(free_port)" --store st
		[ "$stderr" = "fl-serve: refusing to listen on $a without --token-file (or --insecure, to serve anyone who can reach it)" ]
	done
	[ ! -e st ]
	[ -n "$addr" ] || skip "no non-loopback IPv4 address here"
	local p=$(free_port)
	fl-serve --insecure --listen "$addr:$p" --store st 3>&- 2>ins.log &
	OWN=$!
	wait_for curl -sf "http://$addr:$p/v1/health"
	grep -q "serving $addr to anyone who can reach it: no token file" ins.log
	curl -sf "http://$addr:$p/v1/objects" >/dev/null	# no token needed: it says so
	stop_server "$OWN" ins.log
	p=$(free_port)
	fl-serve --token-file "$D/tokens" --listen "$addr:$p" --store st 3>&- 2>tok.log &
	OWN=$!
	wait_for curl -sf "http://$addr:$p/v1/health"
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr:$p/v1/objects")" = 401 ]
	! grep -q "anyone" tok.log
	stop_server "$OWN" tok.log
	OWN=
	# no --listen: 127.0.0.1 on port 7450, in a network namespace of its
	# own so the fixed port is free
	unshare -n true 2>/dev/null || skip "cannot make a network namespace here (needs root)"
	run -0 unshare -n sh -c '
		ip link set lo up
		fl-serve --store st 3>&- 2>def.log &
		i=0
		until curl -sf http://127.0.0.1:7450/v1/health >/dev/null; do
			i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.1
		done
		ss -Hltn
		kill -TERM $! && wait $!'
	[ "$(echo "$output" | awk '{ print $4 }')" = 127.0.0.1:7450 ]
	grep -q "listening on http://127.0.0.1:7450" def.log
}

@test "security: a token file with a short token, an unknown right or no token is refused at start" {
	echo "short read" > t1
	run -2 --separate-stderr fl-serve --token-file t1 --store st --listen 127.0.0.1:$(free_port)
	[ "$stderr" = "fl-serve: t1:1: token shorter than 8 characters" ]
	printf '# tokens\nlongenough-token read admin\n' > t2
	run -2 --separate-stderr fl-serve --token-file t2 --store st --listen 127.0.0.1:$(free_port)
	[ "$stderr" = "fl-serve: t2:2: unknown right 'admin' (read or write)" ]
	printf '# nothing but a comment\n\n' > t3
	run -2 --separate-stderr fl-serve --token-file t3 --store st --listen 127.0.0.1:$(free_port)
	[ "$stderr" = "fl-serve: t3: no token" ]
	[ ! -e st ]
}
