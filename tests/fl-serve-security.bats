#!/usr/bin/env bats
# fl-serve: the claims of SECURITY.md that no other suite checks: rights per
# route, datasets that never leave, handlers without a shell, header and
# body bounds, the events socket's token.

setup_file() {
	load test_helper
	export D="$BATS_FILE_TMPDIR"
	cd "$D" || return 1
	echo "rwtoken-0123456789 read write" > tokens
	echo "rotoken-0123456789 read" >> tokens
	echo "wotoken-0123456789 write" >> tokens
	printf '#!/bin/sh\nexec cat\n' > echo.sh
	chmod +x echo.sh
	fl-pack dataset --header --csv "$FIXTURES/small.csv" -o train.blob
	fl-pack init --arch 4,3 --seed 1 -o m.blob
	export P=$(free_port)
	fl-serve -q --name sec --listen 127.0.0.1:$P --store "$D/st" --token-file tokens \
		--dataset train="$D/train.blob" --handler echo="$D/echo.sh" 3>&- 2>"$D/log" &
	echo $! > "$D/pid"
	wait_for curl -sf http://127.0.0.1:$P/v1/health
}

teardown_file() {
	kill "$(cat "$BATS_FILE_TMPDIR/pid")" 2>/dev/null || true
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
