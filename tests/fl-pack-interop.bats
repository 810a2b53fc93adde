#!/usr/bin/env bats
# fl-pack import and export: weights round-trip with PyTorch's safetensors
# layout and numpy's .npz; corrupt files are named with a documented status.

setup() {
	load test_helper
	common_setup
}

# The golden state dict (tests/fixtures/README.data-interop) as numpy arrays.
PY_GOLDEN='
import json, struct, sys
import numpy as np
def safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    dt = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "U8": "u1"}
    out = {}
    for k, v in h.items():
        a, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + a:8 + n + e], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out, meta
gold = dict(np.load(sys.argv[1]))
'

@test "import: the golden safetensors file, arch inferred, values kept" {
	run -0 --separate-stderr bash -c "fl-pack import '$FIXTURES/mlp_ce.safetensors' > m.blob"
	assert_regex "$stderr" "inferred arch 4,8,relu,3"
	run -0 fl-pack info m.blob
	assert_output --partial "model, 67 parameters"
	assert_output --regexp "arch +4,8,relu,3"
	assert_output --regexp "loss +softmax-ce"
	assert_output --regexp "0.weight +f32 +\[8,4\]"
	assert_output --regexp "2.bias +f32 +\[3\]"
	run -0 fl-pack verify m.blob
	fl-pack export --to npz -o m.npz m.blob
	run -0 /usr/bin/python3 -c "$PY_GOLDEN
m = np.load('m.npz')
assert sorted(m.files) == sorted(gold)
for k in gold: assert np.array_equal(m[k], gold[k]), k
print('ok')" "$FIXTURES/mlp_ce.npz"
	assert_output "ok"
}

@test "import: the golden npz (stored and deflated) with --arch and --loss" {
	run -0 fl-pack import --arch 4,8,relu,3 --loss mse -o m.blob "$FIXTURES/mlp_ce.npz"
	run -0 fl-pack info m.blob
	assert_output --regexp "arch +4,8,relu,3"
	assert_output --regexp "loss +mse"
	run -0 fl-pack import --arch 4,8,relu,3 -o c.blob "$FIXTURES/mlp_ce_compressed.npz"
	run -0 cmp <(tail -c 320 m.blob) <(tail -c 320 c.blob)
	run -0 bash -c "fl-pack import --arch 4,8,relu,3 - < '$FIXTURES/mlp_ce.npz' > s.blob"
}

@test "import --arch: names and shapes must agree" {
	run -10 --separate-stderr fl-pack import --arch 4,9,relu,3 -o m.blob "$FIXTURES/mlp_ce.safetensors"
	assert_equal "$stderr" "fl-pack: $FIXTURES/mlp_ce.safetensors: tensor 0.weight has shape [8,4], expected [9,4]"
	run -10 --separate-stderr fl-pack import --arch 4,8 -o m.blob "$FIXTURES/mlp_ce.safetensors"
	assert_regex "$stderr" "tensor 2.weight is not in the arch"
	run -2 fl-pack import --arch 4,x -o m.blob "$FIXTURES/mlp_ce.safetensors"
	run -2 fl-pack import --loss hinge -o m.blob "$FIXTURES/mlp_ce.safetensors"
	[ ! -e m.blob ]
}

@test "import: without an inferable arch the tensors are stored and it says so" {
	/usr/bin/python3 -c '
import numpy as np
np.savez("enc.npz", **{"encoder.weight": np.ones((2, 3), np.float32)})'
	run -0 --separate-stderr fl-pack import -o m.blob enc.npz
	assert_regex "$stderr" "no arch: tensor encoder.weight is not named N.weight or N.bias"
	run -0 fl-pack info m.blob
	assert_output --regexp "encoder.weight +f32 +\[2,3\]"
	refute_output --regexp "arch "
}

@test "export: safetensors and npz load in numpy and match PyTorch's values" {
	fl-pack import --arch 4,8,relu,3 -o m.blob "$FIXTURES/mlp_ce.safetensors"
	run -0 fl-pack export --to safetensors -o m.safetensors m.blob
	run -0 bash -c 'fl-pack export --to npz < m.blob > m.npz'
	run -0 /usr/bin/python3 -c "$PY_GOLDEN
st, meta = safetensors('m.safetensors')
z = np.load('m.npz')
for k in gold:
    assert np.array_equal(st[k], gold[k]) and st[k].dtype == np.float32, k
    assert np.array_equal(z[k], gold[k]) and z[k].dtype == np.float32, k
assert meta['format'] == 'pt' and meta['arch'] == '4,8,relu,3', meta
assert meta['flkit.kind'] == 'model' and meta['loss'] == 'softmax-ce', meta
print('ok')" "$FIXTURES/mlp_ce.npz"
	assert_output "ok"
	run -0 fl-pack export -o x.npz m.blob
	run -0 cmp x.npz m.npz
}

@test "export then import: a model comes back with its arch and values" {
	fl-pack init --arch 5,7,tanh,2 --loss mse --seed 3 -o a.blob
	fl-pack export --to safetensors -o a.safetensors a.blob
	run -0 fl-pack import -o b.blob a.safetensors
	run -0 fl-pack info b.blob
	assert_output --regexp "arch +5,7,tanh,2"
	assert_output --regexp "loss +mse"
	assert_output --regexp "parent_id "
	fl-pack export --to npz -o a.npz a.blob
	fl-pack export --to npz -o b.npz b.blob
	run -0 cmp a.npz b.npz
}

@test "export: weights load into torch.nn.Sequential" {
	/usr/bin/python3 -c 'import torch' 2>/dev/null || skip "python3-torch is not installed"
	fl-pack init --arch 4,8,relu,3 --seed 5 -o m.blob
	fl-pack export --to npz -o m.npz m.blob
	run -0 /usr/bin/python3 -c '
import numpy as np, torch
z = np.load("m.npz")
net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
print(net(torch.ones(1, 4)).shape)'
	assert_output "torch.Size([1, 3])"
}

@test "export: a dataset's x and y keep their dtypes" {
	fl-pack dataset --idx "$FIXTURES/tiny-images-idx3-ubyte.gz" "$FIXTURES/tiny-labels-idx1-ubyte" -o d.blob
	fl-pack export --to safetensors -o d.safetensors d.blob
	run -0 fl-pack import -o back.blob d.safetensors
	run -0 fl-pack info back.blob
	assert_output --partial "dataset"
	assert_output --regexp "x +u8 +\[20,4,4\]"
	assert_output --regexp "samples +20"
}

@test "export: usage, an empty stream, a corrupt blob" {
	fl-pack import -o m.blob "$FIXTURES/mlp_ce.safetensors" 2>/dev/null
	run -2 fl-pack export m.blob
	run -2 fl-pack export --to onnx m.blob
	run -4 bash -c 'fl-pack export --to npz < /dev/null > e.npz'
	cp m.blob bad.blob
	flip_byte bad.blob $(( $(stat -c %s bad.blob) - 100 ))
	run -4 --separate-stderr fl-pack export --to npz -o o.npz bad.blob
	assert_regex "$stderr" "crc"
	[ ! -e o.npz ]
}

# Bad safetensors files: header length, offsets, JSON, dtypes.
st_file() {	# st_file OUT HEADER-JSON DATA-BYTES [HEADER-LENGTH]
	/usr/bin/python3 -c '
import struct, sys
h = sys.argv[2].encode()
n = int(sys.argv[4]) if len(sys.argv) > 4 else len(h)
open(sys.argv[1], "wb").write(struct.pack("<Q", n) + h + bytes(int(sys.argv[3])))' "$@"
}

@test "import: corrupt safetensors files exit 4 (or 10 for unsupported dtypes), writing nothing" {
	local t='"a":{"dtype":"F32","shape":[2],"data_offsets"'
	st_file long.st "{$t:[0,8]}}" 8 100000
	run -4 --separate-stderr fl-pack import -o m.blob long.st
	assert_regex "$stderr" "long.st: header length 100000 is larger than the file"
	st_file range.st "{$t:[0,16]}}" 8
	run -4 --separate-stderr fl-pack import -o m.blob range.st
	assert_regex "$stderr" "range.st: tensor a: data_offsets \[0,16\] out of range"
	st_file overlap.st "{$t:[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}" 12
	run -4 --separate-stderr fl-pack import -o m.blob overlap.st
	assert_regex "$stderr" "overlap"
	st_file json.st "{$t:[0,8]},}" 8
	run -4 --separate-stderr fl-pack import -o m.blob json.st
	assert_regex "$stderr" "json.st: bad JSON header at byte [0-9]+: trailing comma"
	st_file dtype.st '{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}' 8
	run -4 --separate-stderr fl-pack import -o m.blob dtype.st
	assert_regex "$stderr" "tensor a: unknown dtype 'Q7'"
	st_file bool.st '{"a":{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}}' 8
	run -10 fl-pack import -o m.blob bool.st
	printf 'abc' > tiny.st
	run -4 fl-pack import -o m.blob tiny.st
	: > empty.st
	run -4 fl-pack import -o m.blob empty.st
	run -6 fl-pack import -o m.blob nonexistent.safetensors
	[ ! -e m.blob ]
}

@test "import: corrupt npz files exit 4, non-float arrays exit 10, writing nothing" {
	printf 'PK\003\004 not really a zip' > fake.npz
	run -4 --separate-stderr fl-pack import -o m.blob fake.npz
	assert_regex "$stderr" "fake.npz: truncated zip"
	echo 'hello' > text.npz
	run -4 fl-pack import -o m.blob text.npz
	head -c 700 "$FIXTURES/mlp_ce.npz" > cut.npz
	run -4 fl-pack import -o m.blob cut.npz
	cp "$FIXTURES/mlp_ce.npz" flip.npz
	chmod u+w flip.npz
	flip_byte flip.npz 400
	run -4 --separate-stderr fl-pack import -o m.blob flip.npz
	assert_regex "$stderr" "flip.npz: 0.bias: crc mismatch"
	run -10 --separate-stderr fl-pack import -o m.blob "$FIXTURES/ints.npz"
	assert_regex "$stderr" "tensor a is i32, not a float type"
	[ ! -e m.blob ]
}
