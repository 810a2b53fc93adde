#!/usr/bin/env bats
# fl-pack init, info, verify, convert, and the bad inputs every reader must name.

setup() {
	load test_helper
	common_setup
}

@test "init writes a model with PyTorch state-dict names and shapes" {
	run -0 bash -c 'fl-pack init --arch 784,128,relu,10 --seed 7 > m.blob'
	run -0 fl-pack info m.blob
	assert_output --partial "model, 101770 parameters"
	assert_output --regexp "0.weight +f32 +\[128,784\]"
	assert_output --regexp "0.bias +f32 +\[128\]"
	assert_output --regexp "2.weight +f32 +\[10,128\]"
	assert_output --regexp "2.bias +f32 +\[10\]"
	assert_output --regexp "arch +784,128,relu,10"
}

@test "init is deterministic for a seed and differs across seeds" {
	fl-pack init --arch 4,8,relu,3 --seed 1 -o a.blob
	fl-pack init --arch 4,8,relu,3 --seed 1 -o b.blob
	fl-pack init --arch 4,8,relu,3 --seed 2 -o c.blob
	# model_id and created differ; the tensor bytes must not.
	run -0 cmp <(tail -c 256 a.blob) <(tail -c 256 b.blob)
	run -1 cmp -s <(tail -c 256 a.blob) <(tail -c 256 c.blob)
}

@test "init draws weights uniformly within 1/sqrt(fan_in), as nn.Linear" {
	fl-pack init --arch 100,50,tanh,2 --seed 3 -o m.blob
	fl-pack export --to npz -o m.npz m.blob 2>/dev/null || skip "export not built"
	run -0 /usr/bin/python3 -c '
import numpy as np
z = np.load("m.npz")
w = z["0.weight"]; b = z["0.bias"]
assert w.shape == (50, 100) and b.shape == (50,)
assert abs(w).max() <= 0.1 and abs(w).max() > 0.095, abs(w).max()
assert abs(w.mean()) < 0.01 and abs(w.std() - 0.1 / 3**0.5) < 0.005, (w.mean(), w.std())
'
}

@test "init --loss mse is recorded; a bad spec is a usage error" {
	fl-pack init --arch 3,5,tanh,4,sigmoid,2 --loss mse -o m.blob
	run -0 fl-pack info m.blob
	assert_output --regexp "loss +mse"
	run -2 fl-pack init --arch 4,relu,softmax
	assert_output --partial "unknown layer 'softmax'"
	run -2 fl-pack init --arch 4,relu
	assert_output --partial "no linear layer"
	run -2 fl-pack init --arch x,3
	run -2 fl-pack init --arch 4,3 --loss hinge
	run -2 fl-pack init
}

@test "info --json gives kind, params, meta and tensors" {
	fl-pack init --arch 4,3 -o m.blob
	run -0 fl-pack info --json m.blob
	run -0 /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["kind"] == "model" and d["params"] == 15
assert [t["name"] for t in d["tensors"]] == ["0.weight", "0.bias"]
assert d["tensors"][0]["shape"] == [3, 4] and d["tensors"][0]["enc"] == "raw"
assert d["meta"]["loss"] == "softmax-ce" and len(d["meta"]["model_id"]) == 36
' "$output"
}

@test "info reads blobs back to back from standard input" {
	fl-pack init --arch 4,3 -o a.blob
	fl-pack init --arch 5,2 -o b.blob
	run -0 bash -c 'cat a.blob b.blob a.blob | fl-pack info --json'
	assert_equal "${#lines[@]}" 3
	assert_line --index 1 --partial '"params":12'
}

@test "info reads only the header" {
	fl-pack init --arch 4,3 -o m.blob
	# Zero the tensor data: info still works (it never reads it); verify fails.
	/usr/bin/python3 -c '
b = bytearray(open("m.blob", "rb").read())
b[-128:] = bytes(128)
open("m.blob", "wb").write(b)'
	run -0 fl-pack info m.blob
	assert_output --partial "model, 15 parameters"
	run -4 fl-pack verify m.blob
	assert_output --partial "crc mismatch"
}

@test "verify passes good blobs and names the bad one" {
	fl-pack init --arch 4,3 -o good.blob
	cp good.blob bad.blob
	flip_byte bad.blob $(( $(stat -c %s bad.blob) - 64 ))
	run -0 fl-pack verify good.blob
	assert_output "good.blob: ok (1 blob)"
	run --separate-stderr -4 fl-pack verify good.blob bad.blob
	assert_output "good.blob: ok (1 blob)"
	[[ "$stderr" == *"fl-pack: bad.blob: tensor 0.bias: crc mismatch"* ]]
	run -0 fl-pack verify -q good.blob
	assert_output ""
}

@test "a truncated blob is named with where it ends" {
	fl-pack init --arch 4,3 -o m.blob
	head -c 150 m.blob > t.blob
	run -4 fl-pack verify t.blob
	assert_output --partial "t.blob: truncated"
	run -4 bash -c 'head -c 150 m.blob | fl-pack verify -'
	assert_output --partial "<stdin>: truncated"
}

@test "bad magic, and text that is not a blob" {
	echo "hello world, this is not a blob" > text.blob
	run -4 fl-pack info text.blob
	assert_output "fl-pack: text.blob: not a blob (bad magic)"
}

@test "a header declaring a 1 TiB tensor is refused before allocation" {
	/usr/bin/python3 "$FIXTURES/mkblob.py" --huge > huge.blob 2>/dev/null ||
	/usr/bin/python3 - <<'PY'
import struct, zlib
def mp_str(s):
    b = s.encode(); return bytes([0xa0 | len(b)]) + b
hdr = b"\x84" + mp_str("v") + b"\x01" + mp_str("kind") + mp_str("model") + \
      mp_str("meta") + b"\x80" + mp_str("tensors") + b"\x91" + b"\x86" + \
      mp_str("name") + mp_str("w") + mp_str("dtype") + mp_str("f32") + \
      mp_str("shape") + b"\x92\xce\x00\x10\x00\x00\xce\x00\x04\x00\x00" + \
      mp_str("enc") + mp_str("raw") + mp_str("size") + b"\xcf" + struct.pack(">Q", 1 << 40) + \
      mp_str("crc32") + b"\xce\x00\x00\x00\x00"
blob = b"\x89FLB\r\n\x1a\n" + struct.pack("<I", len(hdr)) + hdr
blob += b"\0" * (-len(blob) % 64)
open("huge.blob", "wb").write(blob)
PY
	run -5 fl-pack verify huge.blob
	assert_output --partial "tensor w: 1099511627776 bytes exceeds the limit"
	run -5 bash -c 'cat huge.blob | fl-pack info'
}

@test "an unknown version and an unknown dtype are named" {
	fl-pack init --arch 4,3 -o m.blob
	/usr/bin/python3 - <<'PY'
b = bytearray(open("m.blob", "rb").read())
i = b.index(b"\xa1v\x01"); b[i + 2] = 9
open("v9.blob", "wb").write(b)
b = bytearray(open("m.blob", "rb").read())
i = b.index(b"\xa3f32"); b[i + 1:i + 4] = b"q32"
open("dt.blob", "wb").write(b)
PY
	run -4 fl-pack info v9.blob
	assert_output --partial "unknown version 9"
	run -4 fl-pack info dt.blob
	assert_output --partial "tensor 0.weight: unknown dtype 'q32'"
}

@test "empty input is an error, not silence" {
	run -4 bash -c 'fl-pack info < /dev/null'
	assert_output --partial "<stdin>: empty: no blob"
	: > empty.blob
	run -4 fl-pack verify empty.blob
}

@test "convert to f16 and bf16, compressed or not, keeps values and meta" {
	fl-pack init --arch 20,10,relu,3 --seed 5 -o m.blob
	run -0 bash -c 'fl-pack convert --dtype f16 < m.blob > h.blob'
	run -0 bash -c 'fl-pack convert --dtype bf16 --compress m.blob > bz.blob'
	run -0 bash -c 'fl-pack convert --dtype f32 --no-compress bz.blob > back.blob'
	run -0 fl-pack verify h.blob bz.blob back.blob
	run -0 fl-pack info h.blob
	assert_output --regexp "0.weight +f16 +\[10,20\] +400 raw"
	run -0 fl-pack info bz.blob
	assert_output --regexp "0.weight +bf16 +\[10,20\] +[0-9]+ zlib"
	id=$(fl-pack info --json m.blob | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["meta"]["model_id"])')
	run -0 fl-pack info back.blob
	assert_output --partial "$id"
}

@test "convert --compress round-trips f32 bit for bit" {
	fl-pack init --arch 50,40,relu,10 --seed 9 -o m.blob
	fl-pack convert --compress -o z.blob m.blob
	fl-pack convert --no-compress -o r.blob z.blob
	run -0 cmp m.blob r.blob
}

@test "-o writes atomically and leaves no temp file on failure" {
	fl-pack init --arch 4,3 -o m.blob
	echo junk > junk.blob
	cp m.blob out.blob
	run -4 fl-pack convert --dtype f16 -o out.blob junk.blob
	run -0 cmp m.blob out.blob
	run -0 bash -c 'ls | grep -c tmp || true'
	assert_output 0
}

@test "-o on a FIFO writes into it and leaves it a FIFO (as -o /dev/null must)" {
	fl-pack init --arch 4,3 --seed 2 -o m.blob
	mkfifo p
	cat p > got &
	run -0 fl-pack init --arch 4,3 --seed 2 -o p
	wait
	[ -p p ]
	run -0 fl-pack verify got
	cat p > avg &
	run -0 fl-avg --uniform -o p m.blob got
	wait
	[ -p p ]
	run -0 fl-pack verify avg
	run -0 bash -c 'ls | grep -c tmp || true'
	assert_output 0
}

@test "a blob is never written to a terminal" {
	command -v script >/dev/null || skip "script(1) not installed"
	run script -qec "fl-pack init --arch 4,3" /dev/null
	assert_failure 2
	assert_output --partial "refusing to write a blob to a terminal"
}

@test "usage errors exit 2; --help and --version" {
	run -2 fl-pack
	run -2 fl-pack frobnicate
	assert_output --partial "'frobnicate' is not a command"
	run -2 fl-pack convert --dtype i8
	run -2 fl-pack verify
	run -0 fl-pack --version
	assert_output --regexp "^fl-pack \(flkit\) [0-9]+\.[0-9]+\.[0-9]+$"
}

@test "a full disk is an error, not a truncated blob" {
	[ -w /dev/full ] || skip "no /dev/full"
	run -3 bash -c 'fl-pack init --arch 4,3 > /dev/full'
	assert_output --partial "No space left on device"
}

@test "verify checks large tensors of a file (mapped) and of a pipe alike" {
	fl-pack init --arch 1100,1000 -o m.blob	# 0.weight is 4.4 MB
	cp m.blob bad.blob
	flip_byte bad.blob 2000000
	run -0 fl-pack verify m.blob
	run -4 fl-pack verify bad.blob
	assert_output --partial "bad.blob: tensor 0.weight: crc mismatch"
	run -4 bash -c 'cat m.blob bad.blob | fl-pack verify -'
	assert_output --partial "<stdin> (blob 2): tensor 0.weight: crc mismatch"
	cat m.blob m.blob > two.blob
	run -0 fl-pack verify two.blob
	assert_output "two.blob: ok (2 blobs)"
}
