# test_helper.bash: loaded by every bats suite: a sandbox directory, the
# freshly built programs first on PATH, bats-support and bats-assert.
# With VALGRIND=1 every fl-* program runs under valgrind.

FLKIT_ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
FIXTURES="$FLKIT_ROOT/tests/fixtures"

load_libs() {
	local d
	for d in /usr/lib/bats /usr/lib/bats-core /usr/local/lib /usr/lib; do
		if [ -f "$d/bats-support/load.bash" ]; then
			load "$d/bats-support/load.bash"
			load "$d/bats-assert/load.bash"
			return
		fi
	done
	echo "bats-support and bats-assert are not installed" >&2
	return 1
}
load_libs
bats_require_minimum_version 1.5.0

# dump FILE: a blob as JSON lines (tests/fixtures/mkblob.py); tensors FILE:
# its tensors' values as one line of JSON, to compare two blobs by
dump() { python3 "$FIXTURES/mkblob.py" --dump "$@"; }
tensors() { dump "$1" | python3 -c 'import json,sys; b=json.loads(sys.stdin.readline()); print(json.dumps(b["tensors"], separators=(",",":")))'; }

# Put wrappers first on PATH so that VALGRIND=1 checks every program.
setup_path() {
	local wrap="$BATS_FILE_TMPDIR/bin" p
	if [ ! -d "$wrap" ]; then
		mkdir -p "$wrap"
		for p in "$FLKIT_ROOT"/bin/fl-*; do
			[ -x "$p" ] || continue
			if [ -n "$VALGRIND" ]; then
				printf '#!/bin/sh\nexec valgrind -q --leak-check=full --error-exitcode=99 --errors-for-leak-kinds=definite,indirect,possible %s "$@"\n' "$p" >"$wrap/${p##*/}"
				chmod +x "$wrap/${p##*/}"
			else
				ln -s "$p" "$wrap/${p##*/}"
			fi
		done
	fi
	PATH="$wrap:$PATH"
}
setup_path

# stop_server PID [LOG]: SIGTERM a server started in setup_file and wait for
# it (teardown_file runs in the same shell). It must exit 0: under VALGRIND
# that is valgrind's verdict on the whole session, errors and leaks (99).
stop_server() {
	local rc=0
	kill -TERM "$1" 2>/dev/null || return 0
	wait "$1" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "server $1 exited $rc${2:+; its log $2:}" >&2
		[ -n "$2" ] && tail -n 60 "$2" >&2
		return 1
	fi
}

# Each test gets its own empty directory as the working directory.
common_setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FL_WORKERS="$BATS_TEST_TMPDIR/workers"
	export XDG_CONFIG_HOME="$BATS_TEST_TMPDIR/config"
	export XDG_STATE_HOME="$BATS_TEST_TMPDIR/state"
}

# A free TCP port on 127.0.0.1 (as redis' find_available_port).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for CMD...: retry for up to 10 s until CMD succeeds.
wait_for() {
	local i
	for i in $(seq 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# Byte offset helper: flip one byte of a file at offset $2.
flip_byte() {
	python3 - "$1" "$2" <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read())
b[off] ^= 0x01
open(p, 'wb').write(b)
PY
}
