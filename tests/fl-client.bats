#!/usr/bin/env bats
# fl-send, fl-get and fl-move against workers on loopback ports: bin/fl-serve
# when it is built, else tests/fixtures/fakeworker.py; the fake alone for
# what a real server never does (stall, serve a corrupt blob).

setup_file() {
	load test_helper
	local d=$BATS_FILE_TMPDIR p
	FAKE="$FIXTURES/fakeworker.py"
	echo "tok-alice-0123456789 read write" >"$d/alice.token"
	echo "tok-bob-0123456789 read write" >"$d/bob.token"
	echo "not-the-right-token" >"$d/wrong.token"
	: >"$d/pids"
	for name in alice bob small; do
		p=$(free_port)
		echo "$p" >"$d/$name.port"
		local tok=$d/alice.token
		[ "$name" = bob ] && tok=$d/bob.token
		if [ -x "$FLKIT_ROOT/bin/fl-serve" ] && [ -z "$FL_CLIENT_FAKE" ]; then
			local lim=()
			[ "$name" = small ] && lim=(--max-object-bytes 2000)
			fl-serve -q --name "$name" --listen "127.0.0.1:$p" \
			    --store "$d/store-$name" --token-file "$tok" "${lim[@]}" \
			    >"$d/$name.log" 2>&1 3>&- &
			echo "$! $d/$name.log" >>"$d/servers"
		else
			local lim=()
			[ "$name" = small ] && lim=(--max-bytes 2000)
			python3 "$FAKE" --port "$p" --name "$name" --token-file "$tok" "${lim[@]}" \
			    >"$d/$name.log" 2>&1 3>&- &
		fi
		echo $! >>"$d/pids"
	done
	for name in corrupt stall loopa loopb web; do
		p=$(free_port)
		echo "$p" >"$d/$name.port"
		local args=()
		case $name in
		corrupt) args=(--corrupt) ;;
		stall) args=(--stall) ;;
		loop*) args=(--seq-ids) ;;
		esac
		python3 "$FAKE" --port "$p" --name "$name" "${args[@]}" >"$d/$name.log" 2>&1 3>&- &
		echo $! >>"$d/pids"
	done
	# A CA of our own and a certificate for 127.0.0.1 it signed.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj /CN=flkit-test-ca 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout "$d/tls.key" -out "$d/tls.csr" -subj /CN=127.0.0.1 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$d/san.ext"
	openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
	    -CAcreateserial -out "$d/tls.pem" -days 2 -extfile "$d/san.ext" 2>/dev/null
	p=$(free_port)
	echo "$p" >"$d/tls.port"
	python3 "$FAKE" --port "$p" --name tls --tls-cert "$d/tls.pem" --tls-key "$d/tls.key" \
	    >"$d/tls.log" 2>&1 3>&- &
	echo $! >>"$d/pids"
	mkdir -p "$d/www"
	p=$(free_port)
	echo "$p" >"$d/static.port"
	(cd "$d/www" && exec python3 -m http.server "$p" --bind 127.0.0.1 >/dev/null 2>&1 3>&-) &
	echo $! >>"$d/pids"
	for name in alice bob small corrupt stall loopa loopb web static tls; do
		local path=/v1/health
		[ "$name" = static ] && path=/
		local scheme=http
		[ "$name" = tls ] && scheme=https
		wait_for curl -sf --cacert "$d/ca.pem" "$scheme://127.0.0.1:$(cat "$d/$name.port")$path" || {
			echo "worker $name did not start" >&2
			cat "$d/$name.log" >&2
			return 1
		}
	done
	cat >"$d/workers" <<-EOF
	# the test workers
	alice   http://127.0.0.1:$(cat "$d/alice.port")   alice.token
	bob     http://127.0.0.1:$(cat "$d/bob.port")/    bob.token
	small   http://127.0.0.1:$(cat "$d/small.port")   alice.token
	corrupt http://127.0.0.1:$(cat "$d/corrupt.port")
	stall   http://127.0.0.1:$(cat "$d/stall.port")
	loopa   http://127.0.0.1:$(cat "$d/loopa.port")
	loopb   http://127.0.0.1:$(cat "$d/loopb.port")
	web     http://127.0.0.1:$(cat "$d/web.port")
	down    http://127.0.0.1:$(free_port)
	tls     https://127.0.0.1:$(cat "$d/tls.port")
	wrong   http://127.0.0.1:$(cat "$d/alice.port")/   wrong.token
	EOF
	fl-pack init --arch 4,8,relu,3 --seed 1 >"$d/m1.blob"
	fl-pack init --arch 4,8,relu,3 --seed 2 >"$d/m2.blob"
	fl-pack init --arch 64,64,relu,10 --seed 3 >"$d/big.blob"
	cp "$d/m1.blob" "$d/www/m1.blob"
}

teardown_file() {
	local pid log rc=0
	if [ -f "$BATS_FILE_TMPDIR/servers" ]; then
		while read -r pid log; do
			stop_server "$pid" "$log" || rc=1
		done <"$BATS_FILE_TMPDIR/servers"
	fi
	while read -r pid; do
		kill "$pid" 2>/dev/null || true
	done <"$BATS_FILE_TMPDIR/pids"
	return $rc
}

setup() {
	load test_helper
	common_setup
	D=$BATS_FILE_TMPDIR
	export FL_WORKERS=$D/workers
}

# This bats-assert has no assert_stderr.
stderr_has() { [[ "$stderr" == *"$1"* ]] || { echo "stderr: $stderr"; false; }; }
stderr_is() { [ "$stderr" = "$1" ] || { echo "stderr: $stderr"; false; }; }
stderr_matches() { [[ "$stderr" =~ $1 ]] || { echo "stderr: $stderr"; false; }; }

port() {
	cat "$D/$1.port"
}

@test "send then get: the same bytes, and a pointer WORKER/ID" {
	run -0 --separate-stderr fl-send alice "$D/m1.blob"
	assert_output --regexp '^alice/[0-9a-f]{16}$'
	local p=$output
	run -0 fl-get -o out.blob "$p"
	cmp out.blob "$D/m1.blob"
	fl-get "$p" >out2.blob
	cmp out2.blob "$D/m1.blob"
	# A pointer on standard input, and a worker given as a URL.
	echo "$p" | fl-get - >out3.blob
	cmp out3.blob "$D/m1.blob"
	fl-get "http://127.0.0.1:$(port alice)/${p#alice/}" >out4.blob
	cmp out4.blob "$D/m1.blob"
}

@test "send from standard input; a URL worker prints a URL pointer" {
	run -0 --separate-stderr bash -c "fl-send http://127.0.0.1:$(port bob)/ - < '$D/m2.blob'"
	assert_output --regexp "^http://127.0.0.1:$(port bob)/[0-9a-f]{16}\$"
	fl-get "$output" >out.blob
	cmp out.blob "$D/m2.blob"
}

@test "--tag, WORKER/TAG, and WORKER fetches the newest model" {
	run -0 fl-send --tag best alice "$D/m2.blob"
	fl-get alice/best >tagged.blob
	cmp tagged.blob "$D/m2.blob"
	run -0 fl-send alice "$D/m1.blob"
	fl-get alice >latest.blob
	cmp latest.blob "$D/m1.blob"
	run -2 fl-send --tag ../x alice "$D/m1.blob"
}

@test "-o leaves nothing when the fetch fails" {
	run -6 --separate-stderr fl-get -o out.blob alice/0123456789abcdef
	run -0 bash -c 'echo out.blob*'
	assert_output 'out.blob*'
}

@test "--list and --info, as tables and as JSON" {
	local p
	p=$(fl-send --tag listed alice "$D/m1.blob")
	run -0 fl-get --list alice
	assert_line --index 0 --regexp '^ID +KIND +BYTES +CREATED +TAGS$'
	assert_line --regexp "^${p#alice/} +model +[0-9]+ .* listed\$"
	run -0 fl-get --list --json alice
	echo "$output" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert any(o["id"]==sys.argv[1] and "listed" in o["tags"] for o in d["objects"])' "${p#alice/}"
	run -0 fl-get --info alice
	assert_line --regexp '^name: +alice$'
	run -0 fl-get --info --json alice
	echo "$output" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["name"]=="alice" and d["objects"]>=1'
	run -2 fl-get --json alice
}

@test "--delete removes an object; fetching it then is 6" {
	local p
	p=$(fl-send alice "$D/m1.blob")
	run -0 fl-get --delete "$p"
	run -6 --separate-stderr fl-get "$p"
	stderr_has "${p#alice/}"
	run -6 fl-get --delete "$p"
}

@test "a worker that is down: 7, naming it" {
	run -7 --separate-stderr fl-get --retry 0 down
	stderr_matches '^fl-get: down: cannot reach http://127.0.0.1:[0-9]+/'
	run -7 --separate-stderr fl-send --retry 0 down "$D/m1.blob"
	stderr_has 'down:'
}

@test "no token and a wrong token: 8" {
	# localhost is not the URL of a workers-file line: no token is sent.
	run -8 --separate-stderr fl-get --list "http://localhost:$(port alice)"
	stderr_has "HTTP 401"
	run -8 --separate-stderr fl-send wrong "$D/m1.blob"
	stderr_matches "HTTP 40[13]"
}

@test "unknown object, unknown worker, bad pointer" {
	run -6 --separate-stderr fl-get alice/0123456789abcdef
	stderr_has 'alice/0123456789abcdef'
	run -6 --separate-stderr fl-get carol
	stderr_has "carol: no such worker in $D/workers"
	run -2 --separate-stderr fl-get 'alice/../x'
	stderr_has 'is not a pointer'
	run -6 fl-get alice/no-such-tag
}

@test "a corrupt blob served: 4, and -o writes nothing" {
	local p
	p=$(fl-send corrupt "$D/big.blob")
	run -4 --separate-stderr fl-get -o out.blob "$p"
	stderr_matches 'crc32 mismatch|padding'
	run -0 bash -c 'echo out.blob*'
	assert_output 'out.blob*'
}

@test "a corrupt blob is not sent: 4, and the worker stores nothing" {
	cp "$D/big.blob" bad.blob
	flip_byte bad.blob 2000
	local before
	before=$(fl-get --list --json alice | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["objects"]))')
	run -4 --separate-stderr fl-send alice bad.blob
	stderr_has 'crc32 mismatch'
	run -0 bash -c "fl-get --list --json alice | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"objects\"]))'"
	assert_output "$before"
	printf 'not a blob at all' >junk
	run -4 fl-send alice junk
}

@test "too large for the worker: 5" {
	run -5 --separate-stderr fl-send small "$D/big.blob"
	stderr_has 'HTTP 413'
	run -0 fl-send small "$D/m1.blob"
}

@test "a worker that stalls: 9 after --timeout" {
	run -9 --separate-stderr fl-get --timeout 1 stall/0123456789abcdef
	stderr_has 'timed out'
	run -9 fl-get --timeout 1 --list stall
}

@test "a reference chain is followed; --no-follow prints the next hop" {
	local p r1 r2
	p=$(fl-send alice "$D/m2.blob")
	r1=$(fl-send bob --ref "$p")
	r2=$(fl-send alice --ref "$r1")
	fl-get "$r2" >out.blob
	cmp out.blob "$D/m2.blob"
	run -0 fl-get --no-follow "$r2"
	assert_output "http://127.0.0.1:$(port bob)/${r1#bob/}"
	run -0 fl-get --no-follow "$r1"
	assert_output "http://127.0.0.1:$(port alice)/${p#alice/}"
	# A reference to an object that is gone: 6 at the last hop.
	fl-get --delete "$p"
	run -6 fl-get "$r2"
}

@test "a reference loop is refused" {
	# loopa numbers its objects 1, 2, ...: its first is a reference to a
	# reference on loopb that points back to it.
	local r
	r=$(fl-send loopb --ref loopa/0000000000000001)
	run -0 fl-send loopa --ref "$r"
	assert_output loopa/0000000000000001
	run -10 --separate-stderr fl-get loopa/0000000000000001
	stderr_has 'reference loop'
}

@test "fl-move: the object goes to the other worker and leaves the source" {
	local p n c
	p=$(fl-send alice "$D/m1.blob")
	run -0 --separate-stderr fl-move "$p" bob
	assert_output --regexp '^bob/[0-9a-f]{16}$'
	n=$output
	fl-get "$n" >moved.blob
	cmp moved.blob "$D/m1.blob"
	run -6 fl-get "$p"
	# --copy keeps the source's copy.
	run -0 fl-move --copy "$n" alice
	c=$output
	fl-get "$c" >copied.blob
	cmp copied.blob "$D/m1.blob"
	fl-get "$n" >kept.blob
	cmp kept.blob "$D/m1.blob"
	run -6 fl-move alice/0123456789abcdef bob
	run -7 fl-move --retry 0 "$n" down
}

@test "plain URLs: fetch from a web server, --put to one" {
	fl-get "http://127.0.0.1:$(port static)/m1.blob" >out.blob
	cmp out.blob "$D/m1.blob"
	run -6 fl-get "http://127.0.0.1:$(port static)/none.blob"
	run -0 fl-send --put "http://127.0.0.1:$(port web)/files/up.blob" "$D/m2.blob"
	fl-get "http://127.0.0.1:$(port web)/files/up.blob" >up.blob
	cmp up.blob "$D/m2.blob"
	echo 'not a blob' >"$D/www/junk.blob"
	run -4 fl-get "http://127.0.0.1:$(port static)/junk.blob"
}

@test "custom messages" {
	if [ -x "$FLKIT_ROOT/bin/fl-serve" ] && [ -z "$FL_CLIENT_FAKE" ]; then
		run -6 --separate-stderr fl-send --message nope alice
		stderr_has 'nope'
	else
		echo hello >body
		run -0 fl-send --message echo alice --data body
		assert_output hello
		run -6 fl-send --message nope alice
	fi
}

@test "workers file errors name the file and line" {
	printf 'alice http://127.0.0.1:1\nbob\n' >bad-workers
	FL_WORKERS=$PWD/bad-workers run -4 --separate-stderr fl-get alice
	stderr_is "fl-get: $PWD/bad-workers:2: expected 'NAME URL [TOKEN-FILE]'"
	printf 'alice ftp://x\n' >bad-workers
	FL_WORKERS=$PWD/bad-workers run -4 --separate-stderr fl-send alice "$D/m1.blob"
	stderr_has "bad-workers:1: 'ftp://x' is not an http"
	printf 'alice http://127.0.0.1:1 missing.token\n' >bad-workers
	FL_WORKERS=$PWD/bad-workers run -3 --separate-stderr fl-get alice
	stderr_has "missing.token: token file of worker alice"
	# The default file under XDG_CONFIG_HOME.
	unset FL_WORKERS
	mkdir -p "$XDG_CONFIG_HOME/flkit"
	grep '^alice' "$D/workers" | sed "s|alice.token|$D/alice.token|" >"$XDG_CONFIG_HOME/flkit/workers"
	run -0 fl-get --info alice
}

@test "usage errors: 2; --help on stdout with 0" {
	run -2 fl-get
	run -2 fl-send
	run -2 fl-move alice
	run -2 fl-send --data x alice
	run -2 fl-send --put ftp://x "$D/m1.blob"
	run -2 fl-get --timeout 0 alice
	for p in fl-get fl-send fl-move; do
		run -0 --separate-stderr "$p" --help
		assert_output --partial "usage: $p"
		run -0 "$p" --version
	done
	run -4 --separate-stderr fl-send alice </dev/null
	stderr_has 'empty, not a blob'
}

@test "--insecure says so" {
	run -0 --separate-stderr fl-get --insecure --info alice
	stderr_has 'NOT verified'
}

@test "TLS: verified against --cacert or FL_CACERT; refused without; --insecure" {
	run -7 --separate-stderr fl-send tls "$D/m1.blob"
	stderr_has 'tls: TLS:'
	stderr_has '--cacert'
	run -0 fl-send --cacert "$D/ca.pem" tls "$D/m1.blob"
	local p=$output
	FL_CACERT=$D/ca.pem run -0 fl-get -o out.blob "$p"
	cmp out.blob "$D/m1.blob"
	run -0 --separate-stderr fl-get --insecure --list tls
	stderr_has 'NOT verified'
}

@test "a blob is never written to nor read from a terminal" {
	command -v script >/dev/null || skip "no script(1)"
	local p
	p=$(fl-send alice "$D/m1.blob")
	run -2 script -qec "fl-get $p" /dev/null
	assert_output --partial 'refusing to write a blob to a terminal'
	run -2 script -qec "fl-send alice" /dev/null
	assert_output --partial 'refusing to read a blob from a terminal'
	# With --no-follow a reference's next hop is text, fine on a terminal.
	local r
	r=$(fl-send bob --ref "$p")
	run -0 script -qec "fl-get --no-follow $r" /dev/null
	assert_output --partial "/${p#alice/}"
}

@test "a chain of 8 references is followed, 9 are refused" {
	local p r i w
	p=$(fl-send alice "$D/m2.blob")
	r=$p
	for i in 1 2 3 4 5 6 7 8; do
		w=bob
		[ $((i % 2)) -eq 0 ] && w=alice
		r=$(fl-send "$w" --ref "$r")
	done
	fl-get "$r" >out.blob
	cmp out.blob "$D/m2.blob"
	r=$(fl-send bob --ref "$r")
	run -5 --separate-stderr fl-get "$r"
	stderr_has 'more than 8 references'
}
