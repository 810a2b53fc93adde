#!/bin/sh
# bench/transfer.sh: a 1 GiB blob over loopback, side by side in one run:
# raw TCP (sendfile(2) into 1 MiB recv_into, both C loops under Python),
# fl-send and fl-get against fl-serve with its store on tmpfs and on disk,
# curl(1) on the same routes, dd(1) into the store's file system with an
# fsync (what the disk allows a durable store), and one 1 GiB message through Python
# websockets (Debian's python3-websockets, PySyft's transport). Medians of
# RUNS runs, the largest peak RSS of each client over them, and fl-serve's
# peak RSS over all the transfers to each store.
# Usage: bench/transfer.sh [RUNS]   (default 3; BENCH_DIR: the blob and the
# disk store, default /tmp/flkit-bench-transfer; BENCH_TMPFS: the tmpfs
# store, default /dev/shm/flkit-bench-store; WS=0 skips websockets)
# Needs /usr/bin/time and /usr/bin/python3 with python3-websockets
# (share/install-deps bench).
set -e
cd "$(dirname "$0")/.."
RUNS=${1:-3}
D=${BENCH_DIR:-/tmp/flkit-bench-transfer}
T=${BENCH_TMPFS:-/dev/shm/flkit-bench-store}
mkdir -p "$D"
PATH=$PWD/bin:$PATH
tok=bench-token-0123456789
echo "$tok read write" >"$D/token"
printf 'bench http://127.0.0.1:0 token\n' >"$D/workers"
export FL_WORKERS="$D/workers"

if [ ! -f "$D/m.blob" ]; then
	echo "making a 1 GiB model (16384x16384 f32) in $D" >&2
	fl-pack init --arch 16384,16384 -o "$D/m.blob"
fi
bytes=$(stat -c %s "$D/m.blob")
cat "$D/m.blob" >/dev/null
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# med [up] CMD...: "SECONDS RSS_MIB": the median wall time of RUNS runs and
# the largest peak RSS; with up, what each run stored is deleted after it
# (its pointer or JSON reply on stdout), so that the store holds one copy.
# Before each run the blob and the store's files are read, so that they are
# in the page cache: this machine's kernel pages out page cache that looks
# idle (DAMON's proactive reclaim, /sys/kernel/mm/damon), and a run would
# otherwise read from the disk now and then.
med() {
	WARM="$D/m.blob ${S:-}" /usr/bin/python3 - "$RUNS" "$port" "$tok" "$@" <<'PY'
import json, os, subprocess, sys, time, urllib.request
runs, port, tok = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cmd = sys.argv[4:]
up = cmd[0] == "up"
if up:
    cmd = cmd[1:]
def warm():	# the store's files may come and go meanwhile
    subprocess.run("find %s -type f -exec cat {} + >/dev/null 2>&1" %
        os.environ["WARM"], shell=True)
ts, rss = [], 0
for _ in range(runs):
    warm()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, st, ru = os.wait4(p.pid, 0)
    ts.append(time.perf_counter() - t)
    if st:
        sys.exit("failed: %s" % " ".join(cmd))
    rss = max(rss, ru.ru_maxrss)
    if up:
        s = out.decode().strip()
        oid = json.loads(s)["id"] if s.startswith("{") else s.split("/")[-1]
        urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%s/v1/objects/%s" % (port, oid), method="DELETE",
            headers={"Authorization": "Bearer " + tok}))
ts.sort()
print("%.4f %.0f" % (ts[len(ts) // 2], rss / 1024))
PY
}
row() {	# row NAME "SECONDS RSS"
	set -- "$1" ${2}
	awk -v n="$1" -v t="$2" -v r="$3" -v b="$bytes" -v raw="$t_tcp" 'BEGIN {
	    printf "%-34s %7.3f s %6.0f MB/s %5.0f%% of raw TCP   client rss %5.0f MiB\n",
	    n, t, b / t / 1e6, 100 * raw / t, r }'
}

# Raw TCP loopback: a receiver discarding 1 MiB blocks, a sender of the file.
port=0
t_tcp=$(med /usr/bin/python3 -c '
import socket, sys, threading
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
def rx():
    c, _ = ls.accept(); b = bytearray(1 << 20); v = memoryview(b)
    while c.recv_into(v): pass
t = threading.Thread(target=rx); t.start()
s = socket.create_connection(ls.getsockname())
with open(sys.argv[1], "rb") as f:
    s.sendfile(f)
s.close(); t.join()' "$D/m.blob" | cut -d' ' -f1)
printf '%s of %s bytes, medians of %s runs\n' "$(basename "$D/m.blob")" "$bytes" "$RUNS"
printf '%-34s %7.3f s %6.0f MB/s\n' "raw TCP loopback" "$t_tcp" \
    "$(awk -v b="$bytes" -v t="$t_tcp" 'BEGIN { print b / t / 1e6 }')"

srv=
trap '[ -z "$srv" ] || kill $srv 2>/dev/null; rm -rf "$T" "$D/store" "$D/out.blob"' EXIT
for where in tmpfs disk; do
	if [ $where = tmpfs ]; then S=$T; else S=$D/store; fi
	rm -rf "$S"
	port=$(freeport)
	fl-serve -q --name bench --listen "127.0.0.1:$port" --store "$S" --token-file "$D/token" 3>&- &
	srv=$!
	printf 'bench http://127.0.0.1:%s token\n' "$port" >"$D/workers"
	i=0
	until curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "fl-serve did not start" >&2; exit 1; }
		sleep 0.1
	done
	echo "store on $where ($S):"
	id=$(fl-send bench "$D/m.blob")
	id=${id#bench/}
	row "  fl-send FILE" "$(med up fl-send bench "$D/m.blob")"
	row "  fl-send - < FILE" "$(med up sh -c "exec fl-send bench - < '$D/m.blob'")"
	row "  curl -T FILE (POST)" "$(med up curl -sf -X POST -H "Authorization: Bearer $tok" \
	    -H 'Accept: application/json' -H 'Expect:' -T "$D/m.blob" \
	    "http://127.0.0.1:$port/v1/objects")"
	row "  fl-get > /dev/null" "$(med sh -c "exec fl-get bench/$id > /dev/null")"
	row "  fl-get -o FILE (fsync)" "$(med fl-get -o "$D/out.blob" "bench/$id")"
	row "  curl > /dev/null" "$(med curl -sf -o /dev/null -H "Authorization: Bearer $tok" \
	    "http://127.0.0.1:$port/v1/objects/$id")"
	cmp "$D/out.blob" "$D/m.blob"
	rm -f "$D/out.blob"
	# What the store's file system takes: the blob copied into it and
	# fsynced, no network. An upload is acknowledged only when its object
	# is on the disk, so on a slow disk this, not the network, bounds it.
	row "  dd into the store (conv=fsync)" "$(med dd if="$D/m.blob" of="$S/dd.tmp" \
	    bs=1M conv=fsync status=none)"
	rm -f "$S/dd.tmp"
	# The server holds no object whole: its peak RSS over the transfers.
	printf '  %-32s %s\n' "fl-serve peak RSS" \
	    "$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' /proc/$srv/status)"
	kill $srv
	wait $srv 2>/dev/null || true
	srv=
	rm -rf "$S"
done

# Python websockets: the whole message in memory at both ends.
if [ "${WS:-1}" != 0 ]; then
	port=$(freeport)
	/usr/bin/python3 bench/ws_py.py serve "$port" none 3>&- &
	srv=$!
	i=0
	until python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "the websockets server did not start" >&2; exit 1; }
		sleep 0.1
	done
	echo "Python websockets $(/usr/bin/python3 -c 'import websockets; print(websockets.__version__)'), one message, no compression:"
	# Times are the client's whole run, reading the file included, as
	# for fl-send.
	row "  client -> server" "$(med /usr/bin/python3 bench/ws_py.py up "$port" "$D/m.blob" none)"
	row "  server -> client" "$(med /usr/bin/python3 bench/ws_py.py down "$port" "$D/m.blob" none)"
	printf '  %-32s %s\n' "server peak RSS" \
	    "$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' /proc/$srv/status)"
fi
