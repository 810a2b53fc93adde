#!/bin/sh
# bench/transfer.sh: fl-send and fl-get of a 1 GiB blob over loopback to
# fl-serve (store on tmpfs), beside raw TCP loopback (1 MiB blocks, Python's
# socket.sendall and recv_into, both C loops) and curl(1) on the same routes.
# Medians of RUNS runs; peak RSS of each client.
# Usage: bench/transfer.sh [RUNS]   (default 3; BENCH_DIR, BENCH_STORE)
set -e
cd "$(dirname "$0")/.."
RUNS=${1:-3}
D=${BENCH_DIR:-/tmp/flkit-bench-transfer}
S=${BENCH_STORE:-/dev/shm/flkit-bench-store}
mkdir -p "$D"
PATH=$PWD/bin:$PATH

if [ ! -f "$D/m.blob" ]; then
	echo "making a 1 GiB model (16384x16384 f32) in $D" >&2
	fl-pack init --arch 16384,16384 -o "$D/m.blob"
fi
bytes=$(stat -c %s "$D/m.blob")
cat "$D/m.blob" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "bench-token-0123456789 read write" >"$D/token"
rm -rf "$S"
fl-serve -q --name bench --listen "127.0.0.1:$port" --store "$S" --token-file "$D/token" 3>&- &
srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$S"' EXIT
printf 'bench http://127.0.0.1:%s token\n' "$port" >"$D/workers"
export FL_WORKERS="$D/workers"
i=0
until curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "fl-serve did not start" >&2; exit 1; }
	sleep 0.1
done

# med CMD...: median wall seconds of RUNS runs
med() {
	python3 - "$RUNS" "$@" <<'PY'
import subprocess, sys, time
runs = int(sys.argv[1]); cmd = sys.argv[2:]
ts = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    ts.append(time.perf_counter() - t)
ts.sort(); print("%.4f" % ts[len(ts) // 2])
PY
}
rss() {	# peak RSS in MiB of CMD
	/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{ printf "%.0f", $1 / 1024 }'
}
mbs() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%6.0f", b / t / 1e6 }'; }
row() {	# row NAME SECONDS [RSS]
	printf '%-36s %7.3f s %s MB/s %5.0f%% of raw TCP  %s\n' "$1" "$2" "$(mbs "$2")" \
	    "$(awk -v a="$t_tcp" -v b="$2" 'BEGIN { print 100 * a / b }')" "${3:+rss ${3} MiB}"
}

# Raw TCP loopback: a receiver discarding 1 MiB blocks, a sender of the file.
t_tcp=$(med python3 -c '
import socket, sys, threading
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
def rx():
    c, _ = ls.accept(); b = bytearray(1 << 20); v = memoryview(b)
    while c.recv_into(v): pass
t = threading.Thread(target=rx); t.start()
s = socket.create_connection(ls.getsockname())
with open(sys.argv[1], "rb") as f:
    s.sendfile(f)
s.close(); t.join()' "$D/m.blob")
printf '%-36s %7.3f s %s MB/s\n' "raw TCP loopback" "$t_tcp" "$(mbs "$t_tcp")"

id=$(fl-send bench "$D/m.blob")
id=${id#bench/}
tok=$(cut -d' ' -f1 "$D/token")
row "fl-send FILE" "$(med fl-send bench "$D/m.blob")" "$(rss fl-send bench "$D/m.blob")"
row "fl-send - < FILE" "$(med sh -c "fl-send bench - < '$D/m.blob'")"
row "curl -T FILE (POST)" "$(med curl -sf -X POST -H "Authorization: Bearer $tok" \
    -H 'Expect:' -T "$D/m.blob" "http://127.0.0.1:$port/v1/objects")"
row "fl-get > /dev/null" "$(med sh -c "fl-get bench/$id > /dev/null")" \
    "$(rss sh -c "exec fl-get bench/$id > /dev/null")"
row "fl-get -o FILE" "$(med fl-get -o "$D/out.blob" "bench/$id")"
row "curl > /dev/null" "$(med curl -sf -o /dev/null -H "Authorization: Bearer $tok" \
    "http://127.0.0.1:$port/v1/objects/$id")"
cmp "$D/out.blob" "$D/m.blob"
rm -f "$D/out.blob"
# The server holds no object whole: its peak RSS over all the transfers.
printf '%-28s %s\n' "fl-serve peak RSS" \
    "$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' /proc/$srv/status)"
