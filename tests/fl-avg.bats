#!/usr/bin/env bats
# fl-avg: every rule and option, and every bad input.

load test_helper
bats_require_minimum_version 1.5.0

# This bats-assert has no assert_stderr.
stderr_has() { [[ "$stderr" == *"$1"* ]] || { echo "stderr: $stderr"; false; }; }
stderr_is() { [ "$stderr" = "$1" ] || { echo "stderr: $stderr"; false; }; }

mk() { python3 "$FIXTURES/mkblob.py" "$@"; }
meta() { dump "$1" | python3 -c 'import json,sys; b=json.loads(sys.stdin.readline()); print(json.dumps(b["meta"]["'"$2"'"], separators=(",",":")))'; }

model() {	# model FILE SAMPLES W1,W2,W3,W4 B1,B2 [extra meta JSON]
	mk "$1" '{"meta":{"samples":'"$2"',"round":2,"model_id":"id-'"${1%.blob}"'","client":"c-'"${1%.blob}"'"'"${5:+,$5}"'},"tensors":[["w","f32",[2,2],['"$3"']],["b","f32",[2],['"$4"']]]}'
}

setup() {
	common_setup
	model a.blob 1 1,2,3,4 0,0 '"x-keep":"yes"'
	model b.blob 3 5,6,7,8 4,8
	model c.blob 4 100,-6,7,1 4,9
	model z.blob 0 0,0,0,0 0,0
}

@test "fl-avg: fedavg by samples, meta round/parents/contributors, unknown keys kept" {
	run -0 fl-avg -o out.blob a.blob b.blob
	run -0 tensors out.blob
	assert_output '{"w":[4.0,5.0,6.0,7.0],"b":[3.0,6.0]}'
	run -0 meta out.blob samples;      assert_output 4
	run -0 meta out.blob round;        assert_output 3
	run -0 meta out.blob parents;      assert_output '["id-a","id-b"]'
	run -0 meta out.blob contributors; assert_output '["c-a","c-b"]'
	run -0 meta out.blob rule;         assert_output '"fedavg"'
	run -0 meta out.blob x-keep;       assert_output '"yes"'
	run -0 meta out.blob producer;     assert_output --partial fl-avg
}

@test "fl-avg: --uniform and --weights" {
	fl-avg --uniform a.blob b.blob >u.blob
	run -0 tensors u.blob
	assert_output '{"w":[3.0,4.0,5.0,6.0],"b":[2.0,4.0]}'
	fl-avg --weights 3,1 a.blob b.blob >w.blob
	run -0 tensors w.blob
	assert_output '{"w":[2.0,3.0,4.0,5.0],"b":[1.0,2.0]}'
	run -2 --separate-stderr fl-avg --weights 1,2,3 a.blob b.blob
	stderr_has '3 weights for 2 inputs'
	run -2 fl-avg --uniform --weights 1,1 a.blob b.blob
}

@test "fl-avg: blobs back to back on standard input, and mixed with files" {
	cat a.blob b.blob >ab.blob
	run -0 bash -c 'cat a.blob b.blob | fl-avg - >s.blob'
	run -0 tensors s.blob
	assert_output '{"w":[4.0,5.0,6.0,7.0],"b":[3.0,6.0]}'
	run -0 bash -c 'cat a.blob | fl-avg - b.blob >s2.blob'
	run -0 tensors s2.blob
	assert_output '{"w":[4.0,5.0,6.0,7.0],"b":[3.0,6.0]}'
	run -0 fl-avg -o f.blob ab.blob
	run -0 tensors f.blob
	assert_output '{"w":[4.0,5.0,6.0,7.0],"b":[3.0,6.0]}'
	# The blob's place in its file is not read back from its label, where a
	# name like this one, or a long path cut short, misled it.
	cp ab.blob "m (blob 2).blob"
	run -0 fl-avg -o f2.blob "m (blob 2).blob"
	run -0 tensors f2.blob
	assert_output '{"w":[4.0,5.0,6.0,7.0],"b":[3.0,6.0]}'
	long=$(printf 'd%.0s' $(seq 130))
	mkdir "$long" && cp ab.blob "$long/ab.blob"
	run -0 fl-avg -o f3.blob "$long/ab.blob"
	run -0 tensors f3.blob
	assert_output '{"w":[4.0,5.0,6.0,7.0],"b":[3.0,6.0]}'
	run -2 --separate-stderr fl-avg - - <ab.blob
	stderr_has 'standard input given twice'
}

@test "fl-avg: --method median and trimmed-mean" {
	fl-avg --method median a.blob b.blob c.blob >m.blob
	run -0 tensors m.blob
	assert_output '{"w":[5.0,2.0,7.0,4.0],"b":[4.0,8.0]}'
	fl-avg --method median a.blob b.blob >m2.blob
	run -0 tensors m2.blob
	assert_output '{"w":[3.0,4.0,5.0,6.0],"b":[2.0,4.0]}'
	fl-avg --method trimmed-mean --trim 0.34 a.blob b.blob c.blob >t.blob
	run -0 tensors t.blob
	assert_output '{"w":[5.0,2.0,7.0,4.0],"b":[4.0,8.0]}'
	run -0 meta t.blob rule; assert_output '"trimmed-mean"'
	run -2 fl-avg --method trimmed-mean --trim 0.5 a.blob b.blob
	run -2 fl-avg --method nonsense a.blob
}

@test "fl-avg: krum and multi-krum drop the outlier" {
	model d.blob 1 5,6,7,9 4,8
	run -0 fl-avg --method krum --byzantine 1 -o k.blob a.blob b.blob c.blob d.blob b.blob
	run -0 meta k.blob selected
	assert_output '["b.blob"]'
	run -0 fl-avg --method krum --byzantine 1 --multi 2 --uniform -o mk.blob a.blob b.blob c.blob d.blob b.blob
	run -0 meta mk.blob rule; assert_output '"multi-krum"'
	run -0 tensors mk.blob
	assert_output '{"w":[5.0,6.0,7.0,8.0],"b":[4.0,8.0]}'
}

@test "fl-avg: krum with too many byzantine is a usage error" {
	run -2 --separate-stderr fl-avg --method krum --byzantine 1 a.blob b.blob c.blob
	stderr_has 'needs at least 5 inputs, got 3'
	run -2 fl-avg --byzantine 1 a.blob b.blob
}

@test "fl-avg: server optimizers keep their state across rounds" {
	run -0 fl-avg --uniform --base z.blob --server-opt adam --server-lr 0.1 --state st.blob -o r1.blob a.blob b.blob
	[ -f st.blob ]
	run -0 meta r1.blob server_opt
	assert_output --partial '"opt":"adam"'
	run -0 fl-avg --uniform --base z.blob --server-opt adam --server-lr 0.1 --state st.blob -o r2.blob a.blob b.blob
	run -0 meta r2.blob server_opt
	assert_output --partial '"step":2'
	run -0 dump st.blob
	assert_output --partial '"step": 2'
	run -2 --separate-stderr fl-avg --uniform --base z.blob --server-opt yogi --state st.blob a.blob b.blob
	stderr_has 'state of server optimizer adam'
	for o in sgd momentum yogi adagrad; do
		run -0 fl-avg --base z.blob --server-opt $o --server-momentum 0.5 --tau 0.01 -o $o.blob a.blob b.blob
	done
	fl-avg --base z.blob --server-opt sgd --server-lr 0.5 a.blob b.blob >half.blob
	run -0 tensors half.blob
	assert_output '{"w":[2.0,2.5,3.0,3.5],"b":[1.5,3.0]}'
	run -2 fl-avg --server-opt adam a.blob
	run -2 fl-avg --base z.blob --server-opt rmsprop a.blob
}

@test "fl-avg: --clip and --noise with --seed; meta records C, Z and n" {
	model p.blob 1 3,0,0,0 0,4
	fl-avg --base z.blob --clip 1 p.blob p.blob >cl.blob
	run -0 tensors cl.blob
	assert_output --regexp '"w":\[0.6000000[0-9]*,0.0,0.0,0.0\]'
	fl-avg --base z.blob --clip 1 --noise 1 --seed 7 p.blob p.blob >n1.blob
	fl-avg --base z.blob --clip 1 --noise 1 --seed 7 p.blob p.blob >n2.blob
	[ "$(tensors n1.blob)" = "$(tensors n2.blob)" ]
	[ "$(tensors n1.blob)" != "$(tensors cl.blob)" ]
	run -0 meta n1.blob dp
	assert_output '{"clip":1.0,"noise":1.0,"n":2}'
	run -2 fl-avg --clip 1 a.blob
	run -2 fl-avg --base z.blob --noise 1 a.blob
}

@test "fl-avg: shape mismatch names both inputs and the tensor" {
	mk bad.blob '{"meta":{"samples":1},"tensors":[["w","f32",[4,1],[1,2,3,4]],["b","f32",[2],[0,0]]]}'
	run -10 --separate-stderr fl-avg a.blob bad.blob
	stderr_is 'fl-avg: bad.blob: tensor w has shape [4,1], expected [2,2] as in a.blob'
	mk other.blob '{"meta":{"samples":1},"tensors":[["v","f32",[2,2],[1,2,3,4]],["b","f32",[2],[0,0]]]}'
	run -10 --separate-stderr fl-avg a.blob other.blob
	stderr_has 'other.blob: tensor 0 is v, expected w as in a.blob'
	mk f64.blob '{"meta":{"samples":1},"tensors":[["w","f64",[2,2],[1,2,3,4]],["b","f64",[2],[0,0]]]}'
	run -10 --separate-stderr fl-avg a.blob f64.blob
	stderr_has 'f64.blob: tensor w is f64, expected f32 as in a.blob'
}

@test "fl-avg: other float dtypes are averaged and kept" {
	mk h1.blob '{"meta":{"samples":1},"tensors":[["w","f16",[2],[1,2]]]}'
	mk h2.blob '{"meta":{"samples":1},"tensors":[["w","f16",[2],[3,4]]]}'
	fl-avg h1.blob h2.blob >h.blob
	run -0 dump h.blob
	assert_output --partial '"dtypes": {"w": "f16"}'
	assert_output --partial '"w": [2.0, 3.0]'
}

@test "fl-avg: NaN input is an error, or left out with --skip-bad" {
	mk nan.blob '{"meta":{"samples":1,"model_id":"id-nan"},"tensors":[["w","f32",[2,2],[1,2,NaN,4]],["b","f32",[2],[0,0]]]}'
	run -10 --separate-stderr fl-avg a.blob nan.blob
	stderr_is 'fl-avg: nan.blob: tensor w holds NaN at element 2 (--skip-bad leaves such inputs out)'
	run -0 --separate-stderr fl-avg --skip-bad -o sk.blob a.blob nan.blob b.blob
	stderr_has 'nan.blob: holds NaN or Inf; left out'
	run -0 meta sk.blob skipped; assert_output '["nan.blob"]'
	run -0 meta sk.blob parents; assert_output '["id-a","id-b"]'
	run -0 tensors sk.blob
	assert_output '{"w":[4.0,5.0,6.0,7.0],"b":[3.0,6.0]}'
	mk inf.blob '{"meta":{"samples":1},"tensors":[["w","f32",[2,2],[1,2,3,Infinity]],["b","f32",[2],[0,0]]]}'
	run -10 --separate-stderr fl-avg --method median a.blob inf.blob
	stderr_has 'holds Inf at element 3'
	run -10 fl-avg --skip-bad nan.blob
}

@test "fl-avg: missing samples asks for --uniform" {
	mk ns.blob '{"meta":{},"tensors":[["w","f32",[2,2],[1,2,3,4]],["b","f32",[2],[0,0]]]}'
	run -10 --separate-stderr fl-avg a.blob ns.blob
	stderr_has 'ns.blob: no samples count in its meta (use --uniform or --weights)'
	run -0 fl-avg --uniform -o x.blob a.blob ns.blob
}

@test "fl-avg: missing file, corrupt blob, not a blob, empty stdin" {
	run -6 --separate-stderr fl-avg a.blob nosuch.blob
	stderr_has 'nosuch.blob'
	cp b.blob bad.blob
	flip_byte bad.blob "$(($(stat -c %s bad.blob) - 64))"
	run -4 --separate-stderr fl-avg -o out.blob a.blob bad.blob
	stderr_has 'crc mismatch'
	[ ! -e out.blob ]
	echo hello >txt
	run -4 --separate-stderr fl-avg txt
	stderr_has 'not a blob'
	run -4 --separate-stderr fl-avg - </dev/null
	stderr_has 'no blob'
	head -c 100 a.blob >short.blob
	run -4 fl-avg short.blob
}

@test "fl-avg: datasets are refused" {
	mk ds.blob '{"kind":"dataset","meta":{},"tensors":[["x","f32",[2],[1,2]]]}'
	run -10 --separate-stderr fl-avg ds.blob
	stderr_has 'a dataset blob, not a model'
}

@test "fl-avg: refuses to write a blob to a terminal" {
	command -v script >/dev/null || skip "no script(1)"
	run script -qec "fl-avg $BATS_TEST_TMPDIR/a.blob" /dev/null
	assert_failure 2
	assert_output --partial 'refusing to write a blob to a terminal'
}

@test "fl-avg: -h, --version, usage errors, -q and -v" {
	run -0 fl-avg -h
	assert_output --partial '--server-opt'
	run -0 fl-avg --version
	assert_output --regexp '^fl-avg \(flkit\) [0-9]'
	run -2 fl-avg
	run -2 fl-avg --bogus a.blob
	run -2 fl-avg --trim x a.blob
	mk nan.blob '{"meta":{"samples":1},"tensors":[["w","f32",[2,2],[1,2,NaN,4]],["b","f32",[2],[0,0]]]}'
	run -0 --separate-stderr fl-avg -q --skip-bad -o q.blob a.blob nan.blob
	stderr_is ''
	run -0 --separate-stderr fl-avg -v -o v.blob a.blob b.blob
	stderr_has '2 inputs'
}

@test "fl-avg: -o writes atomically and leaves nothing on failure" {
	model bad.blob 1 1,2,3,4 0,0
	mk bad.blob '{"meta":{"samples":1},"tensors":[["w","f32",[4],[1,2,3,4]],["b","f32",[2],[0,0]]]}'
	echo old >out.blob
	run -10 fl-avg -o out.blob a.blob bad.blob
	[ "$(cat out.blob)" = old ]
	[ "$(ls | grep -c out.blob)" = 1 ]
}

@test "fl-avg: the man page examples use real options" {
	[ -f "$FLKIT_ROOT/man/fl-avg.1" ] || skip "no man page"
	for o in $(grep -o '^\.It Fl \(-[a-z-]*\|[a-z]\)' "$FLKIT_ROOT/man/fl-avg.1" | awk '{print $3}'); do
		fl-avg -h | grep -q -- "-$o" || { echo "man lists -$o, --help does not"; false; }
	done
	for c in "$FLKIT_ROOT/completions/fl-avg.bash" "$FLKIT_ROOT/completions/_fl-avg"; do
		[ -f "$c" ] || continue
		for o in $(fl-avg -h | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
			grep -q -- "$o" "$c" || { echo "$c lacks $o"; false; }
		done
	done
}

# bigmodel FILE NUMEL SAMPLES SEED: "w" [NUMEL] (big enough to be mapped) and
# "b" [3], values from SEED; written like mkblob.py, without numpy.
bigmodel() {
	python3 - "$FIXTURES" "$@" <<'PY'
import array, struct, sys, zlib
sys.path.insert(0, sys.argv[1])
from mkblob import MAGIC, pack, pad
path, n, samples, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
w = array.array("f", [((i * 7919 + seed * 104729) % 2001 - 1000) / 1000.0 for i in range(n)])
import os
b = array.array("f", [seed, -seed, 0.5])
dt = os.environ.get("DTYPE", "f32")
if dt == "f64":	# the same values, read by the chunked reader, not mapped
    w, b = array.array("d", w), array.array("d", b)
# CORRUPT=1: the NaN is not in the crc (a damaged file, not a bad update)
wcrc = zlib.crc32(w.tobytes())
if os.environ.get("NAN_AT"):
    w[int(os.environ["NAN_AT"])] = float("nan")
    if not os.environ.get("CORRUPT"):
        wcrc = zlib.crc32(w.tobytes())
tens, data = [], []
for name, a in (("w", w), ("b", b)):
    raw = a.tobytes()
    data.append(raw)
    tens.append({"name": name, "dtype": dt, "shape": [len(a)], "enc": "raw",
                 "size": len(raw), "crc32": wcrc if name == "w" else zlib.crc32(raw)})
hdr = pack({"v": 1, "kind": "model", "meta": {"samples": samples, "round": 1},
            "tensors": tens})
out = MAGIC + struct.pack("<I", len(hdr)) + hdr
with open(path, "wb") as f:
    f.write(out + b"\0" * pad(len(out)))
    for raw in data:
        f.write(raw + b"\0" * pad(len(raw)))
PY
}
# crcs FILE: the tensors' crc32s from the header (a digest of the values)
crcs() {
	python3 - "$FIXTURES" "$1" <<'PY'
import struct, sys
sys.path.insert(0, sys.argv[1])
from mkblob import unpack
b = open(sys.argv[2], "rb").read(1 << 16)
h, _ = unpack(b, 12)
print(" ".join("%s:%08x" % (t["name"], t["crc32"]) for t in h["tensors"]))
PY
}

@test "fl-avg: big tensors: mapped files, a pipe and the generic kernels agree" {
	bigmodel g1.blob 1100003 1 1
	bigmodel g2.blob 1100003 3 2
	bigmodel g3.blob 1100003 4 3
	# 13 MB in all: one thread unless told (--threads 2 keeps the stripes
	# shared out), the same bytes either way
	run -0 fl-avg -o one.blob g1.blob g2.blob g3.blob
	run -0 crcs one.blob; want=$output
	run -0 fl-avg --threads 2 -o f.blob g1.blob g2.blob g3.blob
	run -0 crcs f.blob; assert_output "$want"
	run -0 bash -c 'cat g1.blob g2.blob | fl-avg --threads 2 - g3.blob >p.blob'
	run -0 crcs p.blob; assert_output "$want"
	# Standard output on a file, after other bytes: the threads write their
	# stripes in place, at the blob's offset; both blobs read back checked.
	run -0 bash -c '{ cat g3.blob; fl-avg --threads 2 g1.blob g2.blob g3.blob; } >two.blob'
	tail -c +$(($(stat -c %s g3.blob) + 1)) two.blob >second.blob
	run -0 crcs second.blob; assert_output "$want"
	run -0 fl-avg --uniform -o both.blob two.blob
	FL_AGG_GENERIC=1 run -0 fl-avg --threads 1 -o s.blob g1.blob g2.blob g3.blob
	run -0 crcs s.blob; assert_output "$want"
	# element 5 of w: (i 7919 + seed 104729) % 2001 - 1000, over 1000
	run -0 bash -c "python3 '$FIXTURES/mkblob.py' --dump f.blob | python3 -c '
import json, sys; t = json.loads(sys.stdin.readline())[\"tensors\"]
print(\"%.6f %s\" % (t[\"w\"][5], t[\"b\"]))'"
	assert_output "$(python3 -c '
import array
v = [array.array("f", [((5 * 7919 + s * 104729) % 2001 - 1000) / 1000.0])[0] for s in (1, 2, 3)]
print("%.6f [2.375, -2.375, 0.5]" % ((v[0] + 3 * v[1] + 4 * v[2]) / 8))')"
	run -0 fl-avg --threads 2 --method median -o m.blob g1.blob g2.blob g3.blob
	FL_AGG_GENERIC=1 run -0 fl-avg --method median -o m2.blob g1.blob g2.blob g3.blob
	run -0 crcs m.blob; want=$output
	run -0 crcs m2.blob; assert_output "$want"
}

# spool_of BLOB: where fl-avg spools BLOB from standard input (TMPDIR is
# ./sp), as its open files show while it waits for a second copy; then the
# average of the two is in got.blob. (Seen in /proc, not by a TMPDIR that
# is not there: valgrind needs one for itself.)
spool_of() {
	local pid l=
	mkfifo in.fifo
	# --skip-bad reads its inputs twice: standard input is spooled
	TMPDIR=$PWD/sp fl-avg --uniform --skip-bad - <in.fifo >got.blob &
	pid=$!
	exec 5>in.fifo
	cat "$1" >&5
	for _ in $(seq 300); do
		# fl_tmpfile's names (valgrind keeps files of its own there)
		l=$(ls -l /proc/$pid/fd 2>/dev/null | grep -o -e 'memfd:fl[^ ]*' \
		    -e "$PWD/sp/#[0-9]*" -e "$PWD/sp/flkit\.[^ ]*" | head -1)
		[ -n "$l" ] && break
		sleep 0.1
	done
	cat "$1" >&5
	exec 5>&-
	rm in.fifo
	wait $pid
	echo "$l"
}

@test "fl-avg: standard input is spooled in memory when small, in TMPDIR when big" {
	mkdir sp
	fl-pack init --arch 64,10 --seed 1 -o s1.blob
	run -0 spool_of s1.blob
	assert_output "memfd:flkit"
	run -0 crcs s1.blob; want=$output
	run -0 crcs got.blob; assert_output "$want"
	# Over 16 MiB a blob goes to an unlinked file in TMPDIR.
	fl-pack init --arch 4300,1000 --seed 1 -o b1.blob
	run -0 spool_of b1.blob
	assert_output --regexp "^$PWD/sp/"
	run -0 crcs b1.blob; want=$output
	run -0 crcs got.blob; assert_output "$want"
	[ -z "$(ls -A sp)" ]
}

# rndmodel FILE N SEED SAMPLES: a model of N random f32 (mapped when 16384
# or more), 1000 f32 (read in chunks) and 777 f64 (converted); $NAN_AT puts
# a NaN in the first
rndmodel() {
	python3 - "$FIXTURES" "$@" <<'PY'
import os, random, sys
sys.path.insert(0, sys.argv[1])
from mkblob import write
path, n, seed, samples = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = random.Random(seed)
tens = [[name, dt, [k], [r.gauss(0, 1) for _ in range(k)]]
        for name, dt, k in (("w", "f32", n), ("b", "f32", 1000), ("d", "f64", 777))]
if os.environ.get("NAN_AT"):
    tens[0][3][int(os.environ["NAN_AT"])] = float("nan")
write(path, {"meta": {"samples": samples, "round": 1}, "tensors": tens})
PY
}

@test "fl-avg: standard input alone is summed as its blobs come, to the same bits as files" {
	# 20003 floats: mapped, with a tail of 35 past the last block of 64
	for i in 1 2 3 4; do rndmodel r$i.blob 20003 $i $((i * 7)); done
	for w in "" "--weights 0.1,0.7,1.3,0.45" "--uniform"; do
		run -0 fl-avg $w -o f.blob r1.blob r2.blob r3.blob r4.blob
		run -0 crcs f.blob; want=$output
		run -0 bash -c "cat r1.blob r2.blob r3.blob r4.blob | fl-avg $w - >p.blob"
		run -0 crcs p.blob; [ "$output" = "$want" ] || { echo "$w: $output != $want"; false; }
		# the spool and the lockstep pass, as before streaming
		run -0 bash -c "cat r1.blob r2.blob | fl-avg $w - r3.blob r4.blob >q.blob"
		run -0 crcs q.blob; [ "$output" = "$want" ] || { echo "$w: $output != $want"; false; }
		FL_AGG_GENERIC=1 run -0 fl-avg $w -o g.blob r1.blob r2.blob r3.blob r4.blob
		run -0 crcs g.blob; want=$output
		FL_AGG_GENERIC=1 run -0 bash -c "cat r1.blob r2.blob r3.blob r4.blob | fl-avg $w - >h.blob"
		run -0 crcs h.blob; [ "$output" = "$want" ] || { echo "generic $w: $output != $want"; false; }
		FL_AGG_GENERIC=scalar run -0 bash -c "cat r1.blob r2.blob r3.blob r4.blob | fl-avg $w - >h.blob"
		run -0 crcs h.blob; [ "$output" = "$want" ] || { echo "scalar $w: $output != $want"; false; }
	done
	# 0.1 * 3 - 0.1 * 3 is 0 as a product and a sum, and the product's
	# rounding error with a fused multiply-add, as the wide kernels sum
	# tensors that are mapped: the stream sums each tensor the same way.
	for v in 3 -3; do
		mk c$v.blob "$(python3 -c 'import json,sys; v = float(sys.argv[1])
print(json.dumps({"meta": {"samples": 1}, "tensors": [["w", "f32", [16448], [v] * 16448],
    ["b", "f32", [64], [v] * 64]]}))' $v)"
	done
	for g in 0 1 scalar; do
		FL_AGG_GENERIC=$g run -0 fl-avg --weights 0.1,0.1 -o f.blob c3.blob c-3.blob
		run -0 crcs f.blob; want=$output
		FL_AGG_GENERIC=$g run -0 bash -c 'cat c3.blob c-3.blob | fl-avg --weights 0.1,0.1 - >p.blob'
		run -0 crcs p.blob; [ "$output" = "$want" ] || { echo "generic=$g: $output != $want"; false; }
		[ $g = 0 ] || echo "$want" >>c.crcs
	done
	# the generic kernels by AVX2 and by their scalar loops: one result
	[ "$(sort -u c.crcs | wc -l)" -eq 1 ]
	run -0 bash -c 'cat r1.blob r2.blob r3.blob r4.blob | fl-avg - >p.blob'
	run -0 meta p.blob samples; assert_output 70
	run -0 meta p.blob round; assert_output 2
	run -0 --separate-stderr bash -c 'cat r1.blob r2.blob | fl-avg -v - >v.blob'
	stderr_has '2 inputs, folded in as they came'
	# No spool: while the first blob is summed and the second has not
	# come, fl-avg holds no memfd and nothing in TMPDIR.
	mkdir sp
	mkfifo in.fifo
	TMPDIR=$PWD/sp fl-avg --uniform - <in.fifo >got.blob &
	pid=$!
	exec 5>in.fifo
	cat r1.blob >&5
	sleep 0.5
	run ls -l /proc/$pid/fd
	cat r2.blob >&5
	exec 5>&-
	wait $pid
	# fl_tmpfile's names, as spool_of looks for them (valgrind keeps
	# files of its own in TMPDIR)
	refute_output --partial memfd:fl
	refute_output --regexp "$PWD/sp/(#[0-9]|flkit\.)"
	[ -z "$(ls -A sp)" ]
	run -0 fl-avg --uniform -o want.blob r1.blob r2.blob
	run -0 crcs want.blob; want=$output
	run -0 crcs got.blob; assert_output "$want"
	# A blob that is bad mid-stream: named, nothing written.
	NAN_AT=7 rndmodel n.blob 20003 9 1
	run -10 --separate-stderr bash -c 'cat r1.blob n.blob r2.blob | fl-avg - >o.blob'
	stderr_has '<stdin> (blob 2): tensor w holds NaN at element 7'
	[ ! -s o.blob ]
	head -c 5000 r2.blob >cut.blob
	run -4 --separate-stderr bash -c 'cat r1.blob cut.blob | fl-avg - >o.blob'
	stderr_has '<stdin> (blob 2)'
	[ ! -s o.blob ]
	run -10 --separate-stderr bash -c 'cat r1.blob a.blob | fl-avg - >o.blob'
	stderr_has '<stdin> (blob 2): tensor w has shape [2,2], expected [20003] as in <stdin> (blob 1)'
	run -2 --separate-stderr bash -c 'cat r1.blob r2.blob r3.blob | fl-avg --weights 1,2 - >o.blob'
	stderr_has '2 weights for more inputs'
	run -2 --separate-stderr bash -c 'cat r1.blob r2.blob | fl-avg --weights 1,2,3 - >o.blob'
	stderr_has '3 weights for 2 inputs'
}

@test "fl-avg: standard input whose sum would pass 256 MiB is spooled instead, to the same bits" {
	# 33.6M parameters: a sum of doubles of 268 MB, past the stream's bound
	[ -z "$VALGRIND" ] || skip "two 134 MB models are too slow under valgrind"
	fl-pack init --arch 5793,5793 --seed 1 -o a.blob
	fl-pack init --arch 5793,5793 --seed 2 -o b.blob
	run -0 --separate-stderr bash -c 'cat a.blob b.blob | fl-avg -v --uniform - >s.blob'
	stderr_has '2 inputs'
	[[ $stderr != *"folded in"* ]]
	fl-avg --uniform -o f.blob a.blob b.blob
	[ "$(crcs s.blob)" = "$(crcs f.blob)" ]
	rm -f a.blob b.blob s.blob f.blob
}

@test "fl-avg: the threads do not change the sum's bits" {
	# 1e30 + 1 - 1e30 is 0 in that order and 1 in another: the inputs are
	# summed in their order, however many threads share the work.
	mk x.blob '{"meta":{"samples":1},"tensors":[["w","f32",[3],[1e30,5,1]]]}'
	mk y.blob '{"meta":{"samples":1},"tensors":[["w","f32",[3],[1,1e30,2]]]}'
	mk z.blob '{"meta":{"samples":1},"tensors":[["w","f32",[3],[-1e30,-1e30,3]]]}'
	for t in 1 2 3; do
		run -0 fl-avg --threads $t -o t.blob x.blob y.blob z.blob
		run -0 tensors t.blob
		assert_output '{"w":[0.0,0.0,2.0]}'
	done
	run -0 bash -c 'cat x.blob y.blob z.blob | fl-avg - >p.blob'
	run -0 tensors p.blob
	assert_output '{"w":[0.0,0.0,2.0]}'
}

# same_values A B: the tensors of A and B hold the same float32 values
same_values() {
	python3 - "$FIXTURES" "$1" "$2" <<'PY'
import array, sys
sys.path.insert(0, sys.argv[1])
from mkblob import dump
a, b = (dump(open(p, "rb").read())[0]["tensors"] for p in sys.argv[2:4])
for name in a:
    x, y = array.array("f", a[name]), array.array("f", b[name])
    bad = [i for i in range(len(x)) if x[i] != y[i] and x[i] == x[i]]
    if len(x) != len(y) or bad:
        sys.exit("tensor %s: %d of %d differ, first at %s" % (name, len(bad), len(x), bad[:1]))
PY
}

@test "fl-avg: mapped --base, --clip, server optimizers, krum and --skip-bad agree with the chunked reader" {
	for i in 1 2 3 4 5; do
		bigmodel g$i.blob 20000 $i $i
		DTYPE=f64 bigmodel d$i.blob 20000 $i $i
	done
	bigmodel gb.blob 20000 1 9
	DTYPE=f64 bigmodel db.blob 20000 1 9
	NAN_AT=15000 bigmodel gn.blob 20000 2 6
	NAN_AT=15000 DTYPE=f64 bigmodel dn.blob 20000 2 6
	for opts in "--base ?b.blob --clip 100" "--base ?b.blob --clip 100 --noise 0.5 --seed 7" \
	    "--base ?b.blob --server-opt adam --server-lr 0.1 --state ST" \
	    "--base ?b.blob --server-opt momentum --server-lr 0.5 --clip 150" \
	    "--base ?b.blob --server-opt sgd --server-lr 0.7" \
	    "--method median --base ?b.blob --clip 100" \
	    "--method trimmed-mean --trim 0.2 --base ?b.blob --clip 100" \
	    "--method krum --byzantine 1 --multi 2" \
	    "--method krum --byzantine 1 --base ?b.blob --clip 100" \
	    "--skip-bad ?n.blob"; do
		# f32 inputs are mapped (stripes of 2048); f64 go through the reader
		# in chunks of 2048; the generic kernels sum in the same order.
		run -0 fl-avg --chunk 2048 -o f.blob ${opts//\?/g} g1.blob g2.blob g3.blob g4.blob g5.blob
		run -0 crcs f.blob; want=$output
		rm -f ST
		FL_AGG_GENERIC=1 run -0 fl-avg --threads 1 --chunk 2048 -o s.blob ${opts//\?/g} \
		    g1.blob g2.blob g3.blob g4.blob g5.blob
		run -0 crcs s.blob; [ "$output" = "$want" ] || { echo "$opts: $output != $want"; false; }
		rm -f ST
		run -0 fl-avg --threads 1 --chunk 2048 -o r.blob ${opts//\?/d} d1.blob d2.blob \
		    d3.blob d4.blob d5.blob
		run -0 same_values f.blob r.blob || { echo "$opts: $output"; false; }
		rm -f ST
	done
	run -0 meta f.blob skipped
	assert_output '["gn.blob"]'
}

@test "fl-avg: a flipped byte in a big mapped tensor is caught; nothing is left" {
	bigmodel g1.blob 1100003 1 1
	bigmodel g2.blob 1100003 3 2
	cp g2.blob bad.blob
	flip_byte bad.blob 2000000
	run -4 --separate-stderr fl-avg -o out.blob g1.blob bad.blob
	stderr_has 'bad.blob: tensor w: crc mismatch'
	[ ! -e out.blob ]
	[ "$(ls | grep -c '^out')" = 0 ]
	for m in median trimmed-mean; do
		run -4 --separate-stderr fl-avg --method $m -o out.blob bad.blob g1.blob g2.blob
		stderr_has 'bad.blob: tensor w: crc mismatch'
		[ ! -e out.blob ]
	done
	# Standard output on a file: what was written of the blob is taken back.
	echo old >so.blob
	run -4 --separate-stderr bash -c 'fl-avg g1.blob bad.blob >so.blob'
	stderr_has 'crc mismatch'
	[ ! -s so.blob ]
	# Through a pipe the input is spooled and still checked.
	run -4 --separate-stderr bash -c 'cat bad.blob | fl-avg g1.blob - >so.blob'
	stderr_has '<stdin>: tensor w: crc mismatch'
	# A NaN in a big tensor is named with its element, whatever the rule.
	NAN_AT=777777 bigmodel n.blob 1100003 2 2
	for m in mean median; do
		run -10 --separate-stderr fl-avg --method $m -o out.blob g1.blob n.blob
		stderr_has 'n.blob: tensor w holds NaN at element 777777'
		[ ! -e out.blob ]
	done
	# The same with a base, in the first pass (--clip, krum) and the second.
	for o in "--base g1.blob --clip 1" "--base g1.blob --server-opt adam" \
	    "--method krum --byzantine 0" "--method median --base g1.blob --clip 1"; do
		run -4 --separate-stderr fl-avg $o -o out.blob g2.blob bad.blob g1.blob
		stderr_has 'bad.blob: tensor w: crc mismatch'
		run -10 --separate-stderr fl-avg $o -o out.blob g2.blob n.blob g1.blob
		stderr_has 'n.blob: tensor w holds NaN at element 777777'
		[ ! -e out.blob ]
	done
	run -4 --separate-stderr fl-avg --base bad.blob --clip 1 -o out.blob g1.blob g2.blob
	stderr_has 'bad.blob: tensor w: crc mismatch'
	run -10 --separate-stderr fl-avg --base n.blob --server-opt yogi -o out.blob g1.blob g2.blob
	stderr_has 'n.blob: tensor w holds NaN at element 777777'
	[ ! -e out.blob ]
}

@test "fl-avg: a NaN the crc does not know of is a corrupt blob (exit 4), not a bad update, on every path" {
	# The chunks are checked for NaN as they are read, and the crc at the
	# tensor's end: the NaN used to be told first, with exit 10 and the
	# advice to use --skip-bad, for what is a damaged file.
	bigmodel g1.blob 1100003 1 1
	CORRUPT=1 NAN_AT=10 bigmodel c.blob 1100003 2 2
	NAN_AT=10 bigmodel n.blob 1100003 2 2
	run -4 --separate-stderr bash -c 'cat g1.blob c.blob | fl-avg - >so.blob'	# the stream
	stderr_has '<stdin> (blob 2): tensor w: crc mismatch'
	run -4 --separate-stderr bash -c 'cat g1.blob c.blob | fl-avg --skip-bad - >so.blob'
	stderr_has '<stdin> (blob 2): tensor w: crc mismatch'
	run -4 --separate-stderr fl-avg -o out.blob g1.blob c.blob	# mapped
	stderr_has 'c.blob: tensor w: crc mismatch'
	# a true NaN is still one, named with its element
	run -10 --separate-stderr bash -c 'cat g1.blob n.blob | fl-avg - >so.blob'
	stderr_has '<stdin> (blob 2): tensor w holds NaN at element 10'
	# the chunked reader (f64 is not mapped), fused mean and two passes
	DTYPE=f64 bigmodel g1.blob 1100003 1 1
	DTYPE=f64 CORRUPT=1 NAN_AT=10 bigmodel c.blob 1100003 2 2
	DTYPE=f64 NAN_AT=10 bigmodel n.blob 1100003 2 2
	for o in "" "--threads 2" "--method median" "--base g1.blob --clip 1"; do
		run -4 --separate-stderr fl-avg $o --chunk 65536 -o out.blob g1.blob c.blob
		stderr_has 'c.blob: tensor w: crc mismatch'
		run -10 --separate-stderr fl-avg $o --chunk 65536 -o out.blob g1.blob n.blob
		stderr_has 'n.blob: tensor w holds NaN at element 10'
	done
	[ ! -e out.blob ]
}

@test "fl-avg --on: standard input with no pointers is a usage error" {
	# It used to count "-" as an input and ask the worker for a null id.
	run -2 --separate-stderr fl-avg --on http://127.0.0.1:1 - </dev/null
	stderr_has 'no inputs: standard input held no pointers'
	run -2 --separate-stderr fl-avg --on http://127.0.0.1:1 - - </dev/null
	stderr_has 'standard input given twice'
}
