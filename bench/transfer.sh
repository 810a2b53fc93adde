#!/bin/sh
# bench/transfer.sh: a 1 GiB blob over loopback, side by side in one run:
# raw TCP (bench/rawtcp.py: sendfile(2) into 1 MiB recv_into),
# fl-send and fl-get against fl-serve with its store on tmpfs and on disk,
# curl(1) on the same routes, raw TCP and dd(1) into the store's file
# system with an fsync (what the disk allows a durable store), and one
# 1 GiB message through Python websockets (Debian's python3-websockets,
# PySyft's transport). Every run times each of them once, in rotation
# (bench/rotate.py), so that a slow spell of this shared machine or its
# disk falls on all alike; each row is the median of RUNS runs, with the
# largest peak RSS of its client, and fl-serve's peak RSS over all.
# Usage: bench/transfer.sh [RUNS]   (default 5; BENCH_DIR: the blob and the
# disk store, default /tmp/flkit-bench-transfer; BENCH_TMPFS: the tmpfs
# store, default /dev/shm/flkit-bench-store; WS=0 skips websockets)
# Needs /usr/bin/python3 with python3-websockets (share/install-deps bench).
set -e
cd "$(dirname "$0")/.."
RUNS=${1:-5}
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

# A tab-separated line for rotate.py: job LABEL FLAGS WARM CMD...
job() {
	l=$1 f=$2 w=$3
	shift 3
	printf '%s\t%s\t%s\t%s\n' "$l" "$f" "$w" "$*"
}
# rawtcp FILE [DEST]: the command for raw TCP loopback (bench/rawtcp.py)
rawtcp() {
	echo "exec /usr/bin/python3 bench/rawtcp.py $*"
}

srv_t= srv_d=
trap 'kill $srv_t $srv_d 2>/dev/null; rm -rf "$T" "$D/store" "$D/out.blob"' EXIT
# serve STORE: an fl-serve on a free port; sets port and pid
serve() {
	rm -rf "$1"
	port=$(freeport)
	fl-serve -q --name bench --listen "127.0.0.1:$port" --store "$1" --token-file "$D/token" 3>&- &
	pid=$!
	i=0
	until curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "fl-serve did not start" >&2; exit 1; }
		sleep 0.1
	done
}
serve "$T"
srv_t=$pid ROT_PORT_1=$port
serve "$D/store"
srv_d=$pid ROT_PORT_2=$port
export ROT_PORT_1 ROT_PORT_2 ROT_TOKEN=$tok
printf 'tmpfs http://127.0.0.1:%s token\ndisk http://127.0.0.1:%s token\n' \
    "$ROT_PORT_1" "$ROT_PORT_2" >"$D/workers"
B=$D/m.blob
{
	job "raw TCP loopback" b "$B" "$(rawtcp "$B")"
	k=1
	for where in tmpfs disk; do
		if [ $where = tmpfs ]; then S=$T; else S=$D/store; fi
		port=$(eval echo \$ROT_PORT_$k)
		id=$(fl-send $where "$B")
		id=${id#$where/}
		echo "#store on $where ($S):"
		job "  fl-send FILE" u$k "$B $S" exec fl-send $where "'$B'"
		job "  fl-send - < FILE" u$k "$B $S" exec fl-send $where - "< '$B'"
		job "  curl -T FILE (POST)" u$k "$B $S" exec curl -sf -X POST \
		    -H "'Authorization: Bearer $tok'" -H "'Accept: application/json'" \
		    -H "'Expect:'" -T "'$B'" "http://127.0.0.1:$port/v1/objects"
		# The same bytes over raw TCP into the store's file system with
		# an fsync, and copied there by dd with one, no network: an
		# upload is acknowledged only when its object is on the disk,
		# so on a slow disk this, not the network, bounds it.
		job "  raw TCP into it (fsync)" - "$B $S" "$(rawtcp "$B" "$S/raw.tmp")"
		job "  dd into it (conv=fsync)" r "$B $S" dd if="'$B'" \
		    of="'$S/dd.tmp'" bs=1M conv=fsync status=none "&& rm '$S/dd.tmp'"
		job "  fl-get > /dev/null" - "$S" exec fl-get $where/$id "> /dev/null"
		job "  fl-get -o FILE (fsync)" - "$S" exec fl-get -o "'$D/out.blob'" $where/$id
		job "  curl > /dev/null" - "$S" exec curl -sf -o /dev/null \
		    -H "'Authorization: Bearer $tok'" "http://127.0.0.1:$port/v1/objects/$id"
		k=2
	done
} >"$D/cases"
/usr/bin/python3 bench/rotate.py "$RUNS" <"$D/cases" >"$D/times"
cmp "$D/out.blob" "$B"
rm -f "$D/out.blob"

# row LABEL SECONDS RSS RATIO DD_RATIO
row() {
	awk -v n="$1" -v t="$2" -v r="$3" -v q="$4" -v d="$5" -v b="$bytes" 'BEGIN {
	    printf "%-30s %6.3f s %5.0f MB/s %4.0f%% of raw TCP", n, t, b / t / 1e6, 100 * q
	    if (d > 0)
		printf " %4.0f%% of dd", 100 * d
	    printf "  client rss %3.0f MiB\n", r }'
}
rows() {
	while IFS='	' read -r l t r q d; do
		case $l in
		'#'*) echo "${l#?}" ;;
		"raw TCP loopback")
			printf '%-30s %6.3f s %5.0f MB/s\n' "$l" "$t" \
			    "$(awk -v b="$bytes" -v t="$t" 'BEGIN { print b / t / 1e6 }')"
			;;
		"  fl-send"* | "  curl -T"* | "  raw TCP"*) row "$l" "$t" "$r" "$q" "$d" ;;
		*) row "$l" "$t" "$r" "$q" 0 ;;
		esac
	done
}
printf '%s of %s bytes, medians of %s runs, all in rotation\n' "$(basename "$B")" "$bytes" "$RUNS"
rows <"$D/times"
# The server holds no object whole: its peak RSS over all the transfers.
for where in tmpfs disk; do
	if [ $where = tmpfs ]; then p=$srv_t; else p=$srv_d; fi
	printf '%-30s %s\n' "fl-serve peak RSS, $where store" \
	    "$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' /proc/$p/status)"
done
echo "(% of raw TCP, % of dd: the median over runs of raw TCP's time, or of dd"
echo " into that store's file system for an upload, in that run over the row's;"
echo " each run timed every row once, raw TCP first, the rest shuffled)"
kill $srv_t $srv_d
wait $srv_t $srv_d 2>/dev/null || true
srv_t= srv_d=

# Python websockets: the whole message in memory at both ends. Times are
# the client's whole run, reading the file included, as for fl-send.
if [ "${WS:-1}" != 0 ]; then
	port=$(freeport)
	/usr/bin/python3 bench/ws_py.py serve "$port" none 3>&- &
	srv_t=$!
	i=0
	until python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "the websockets server did not start" >&2; exit 1; }
		sleep 0.1
	done
	{
		job "raw TCP loopback" b "$B" "$(rawtcp "$B")"
		echo "#Python websockets $(/usr/bin/python3 -c 'import websockets; print(websockets.__version__)'), one message, no compression:"
		job "  client -> server" - "$B" exec /usr/bin/python3 bench/ws_py.py up "$port" "'$B'" none
		job "  server -> client" - "$B" exec /usr/bin/python3 bench/ws_py.py down "$port" "'$B'" none
	} >"$D/cases"
	/usr/bin/python3 bench/rotate.py "$RUNS" <"$D/cases" | grep -v '^raw TCP' | rows
	printf '%-30s %s\n' "  server peak RSS" \
	    "$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' /proc/$srv_t/status)"
fi
