#!/usr/bin/env bats
# fl-pack dataset (CSV, IDX) and fl-pack split, and the bad inputs they name.

setup() {
	load test_helper
	common_setup
}

# Print a dataset blob's x and y (through an npz export) with numpy.
npz_py() {
	fl-pack export --to npz -o d.npz "$1"
	/usr/bin/python3 -c "import numpy as np; d = np.load('d.npz'); x = d['x']; y = d['y']; $2"
}

@test "dataset --csv: header, features and class labels" {
	run -0 fl-pack dataset --csv "$FIXTURES/small.csv" --header -o d.blob
	run -0 fl-pack info d.blob
	assert_output --partial "dataset"
	assert_output --regexp "x +f32 +\[30,4\]"
	assert_output --regexp "y +i32 +\[30\]"
	assert_output --regexp "samples +30"
	assert_output --regexp "classes +3"
	assert_output --regexp "features +4"
	assert_output --regexp "source +small.csv"
	run -0 npz_py d.blob 'print(x.shape, x.dtype, y[:4].tolist(), x[1,0])'
	assert_output "(30, 4) float32 [0, 1, 2, 0] 1.74"
}

@test "dataset --csv: label column first, negative, targets, class names, stdin" {
	printf '2,1.5,2.5\n0,3,4\n' > a.csv
	run -0 fl-pack dataset --csv a.csv --label-column 0 -o a.blob
	run -0 npz_py a.blob 'print(y.tolist(), x.tolist())'
	assert_output "[2, 0] [[1.5, 2.5], [3.0, 4.0]]"
	printf '1,7,2\n3,8,4\n' > b.csv
	run -0 fl-pack dataset --csv b.csv --label-column -2 -o b.blob
	run -0 npz_py b.blob 'print(y.tolist(), x.tolist())'
	assert_output "[7, 8] [[1.0, 2.0], [3.0, 4.0]]"
	run -0 fl-pack dataset --csv a.csv --targets 2 -o c.blob
	run -0 npz_py c.blob 'print(y.dtype, y.tolist(), x.tolist())'
	assert_output "float32 [[1.5, 2.5], [3.0, 4.0]] [[2.0], [0.0]]"
	printf 'a,b,species\n5.1,3.5,setosa\n6.0,2.2,virginica\n4.7,3.2,setosa\n' > iris.csv
	run -0 bash -c 'fl-pack dataset --header --csv - < iris.csv > i.blob'
	run -0 fl-pack info i.blob
	assert_output --regexp 'class_names +\["setosa","virginica"\]'
	run -0 npz_py i.blob 'print(y.tolist())'
	assert_output "[0, 1, 0]"
}

@test "dataset --csv: a ragged row names the line, exits 4, writes nothing" {
	printf '1,2,0\n3,4,1\n5,6\n' > r.csv
	run -4 --separate-stderr fl-pack dataset --csv r.csv -o out.blob
	assert_equal "$stderr" "fl-pack: r.csv: line 3: 2 fields, expected 3 as on the first line"
	[ ! -e out.blob ]
	run -2 ls out.blob*
}

@test "dataset --csv: a word where a number belongs, exits 4" {
	printf '1,2,0\n3,abc,1\n' > w.csv
	run -4 --separate-stderr fl-pack dataset --csv w.csv -o out.blob
	assert_equal "$stderr" "fl-pack: w.csv: line 2, field 2: 'abc' is not a number"
	[ ! -e out.blob ]
	run -4 --separate-stderr fl-pack dataset --csv "$FIXTURES/small.csv" -o out.blob
	assert_regex "$stderr" "line 1, field 1: 'f1' is not a number \(a header line\? use --header\)"
}

@test "dataset --csv: empty input, bad labels, missing file, usage" {
	: > e.csv
	run -4 --separate-stderr fl-pack dataset --csv e.csv -o out.blob
	assert_equal "$stderr" "fl-pack: e.csv: no data rows (empty file)"
	run -4 bash -c 'fl-pack dataset --csv - < /dev/null > empty.blob'
	printf '1,2,0.5\n' > f.csv
	run -10 --separate-stderr fl-pack dataset --csv f.csv -o out.blob
	assert_regex "$stderr" "line 1: label '0.5' is not a class index"
	run -6 fl-pack dataset --csv nonexistent.csv -o out.blob
	run -2 fl-pack dataset -o out.blob
	run -2 fl-pack dataset --csv a.csv --idx b c
	run -2 fl-pack dataset --csv e.csv --label-column x
	run -2 fl-pack dataset --csv "$FIXTURES/small.csv" --header --label-column 9 -o out.blob
	[ ! -e out.blob ]
	run -0 fl-pack dataset --help
	assert_output --partial "usage: fl-pack dataset --csv FILE"
}

@test "dataset --idx: gzipped and plain IDX files, u8 or normalized" {
	run -0 fl-pack dataset --idx "$FIXTURES/tiny-images-idx3-ubyte.gz" "$FIXTURES/tiny-labels-idx1-ubyte" -o d.blob
	run -0 fl-pack info d.blob
	assert_output --regexp "x +u8 +\[20,4,4\]"
	assert_output --regexp "y +u8 +\[20\]"
	assert_output --regexp "features +16"
	run -0 npz_py d.blob 'print(x[1,0,:3].tolist(), y[:6].tolist())'
	assert_output "[13, 14, 15] [0, 1, 2, 3, 4, 0]"
	run -0 fl-pack dataset --normalize --idx "$FIXTURES/tiny-images-idx3-ubyte.gz" "$FIXTURES/tiny-labels-idx1-ubyte" -o n.blob
	run -0 npz_py n.blob 'print(x.dtype, round(float(x[1,0,0]) * 255, 3), float(x.max()) <= 1)'
	assert_output "float32 13.0 True"
}

@test "dataset --idx: counts disagree, bad magic, truncated: exit 4, nothing written" {
	/usr/bin/python3 -c '
import struct
open("l19", "wb").write(struct.pack(">II", 0x801, 19) + bytes(19))
open("magic", "wb").write(struct.pack(">II", 0x12345678, 20) + bytes(20))
open("short", "wb").write(struct.pack(">IIII", 0x803, 20, 4, 4) + bytes(100))
'
	run -4 --separate-stderr fl-pack dataset --idx "$FIXTURES/tiny-images-idx3-ubyte.gz" l19 -o out.blob
	assert_regex "$stderr" "holds 20 images but l19 holds 19 labels"
	run -4 --separate-stderr fl-pack dataset --idx "$FIXTURES/tiny-images-idx3-ubyte.gz" magic -o out.blob
	assert_regex "$stderr" "magic: bad magic 0x12345678"
	run -4 --separate-stderr fl-pack dataset --idx short "$FIXTURES/tiny-labels-idx1-ubyte" -o out.blob
	assert_regex "$stderr" "short: truncated: the header declares 320 data bytes, the file holds 100"
	head -c 60 "$FIXTURES/tiny-images-idx3-ubyte.gz" > cut.gz
	run -4 fl-pack dataset --idx cut.gz "$FIXTURES/tiny-labels-idx1-ubyte" -o out.blob
	: > empty
	run -4 --separate-stderr fl-pack dataset --idx empty "$FIXTURES/tiny-labels-idx1-ubyte" -o out.blob
	assert_regex "$stderr" "empty: empty file"
	[ ! -e out.blob ]
}

@test "dataset --idx: Fashion-MNIST from Debian's package" {
	local d=/usr/share/datasets/fashion-mnist
	[ -e "$d/t10k-images-idx3-ubyte.gz" ] || skip "dataset-fashion-mnist is not installed"
	run -0 fl-pack dataset --idx "$d/t10k-images-idx3-ubyte.gz" "$d/t10k-labels-idx1-ubyte.gz" -o t.blob
	run -0 fl-pack info t.blob
	assert_output --regexp "x +u8 +\[10000,28,28\]"
	assert_output --regexp "classes +10"
}

@test "split: IID parts, histograms that sum to the dataset" {
	fl-pack dataset --csv "$FIXTURES/small.csv" --header -o d.blob
	run -0 fl-pack split --parts 3 --seed 4 --prefix w d.blob
	assert_line --index 0 --regexp "^file +samples +0 +1 +2$"
	assert_line --index 1 --regexp "^w1.blob +10 "
	assert_line --index 3 --regexp "^w3.blob +10 "
	[ -e w1.blob ] && [ -e w2.blob ] && [ -e w3.blob ] && [ ! -e w4.blob ]
	run -0 fl-pack info w2.blob
	assert_output --regexp "x +f32 +\[10,4\]"
	assert_output --regexp "samples +10"
	assert_output --regexp "part +2"
	assert_output --regexp "parts +3"
	assert_output --regexp "source +small.csv"
	run -0 bash -c 'fl-pack split --parts 3 --json --prefix j - < d.blob'
	run -0 /usr/bin/python3 -c "
import json, sys
p = json.loads(sys.argv[1])
assert [q['part'] for q in p] == [1, 2, 3]
assert sum(q['samples'] for q in p) == 30
assert [sum(c) for c in zip(*(q['classes'] for q in p))] == [10, 10, 10]
print('ok')" "$output"
	assert_output "ok"
}

@test "split: the same seed gives the same parts; Dirichlet skews labels" {
	/usr/bin/python3 -c '
for i in range(600):
    print("%d,%d,%d" % (i, i % 7, i % 6))' > big.csv
	fl-pack dataset --csv big.csv -o d.blob
	fl-pack split --parts 4 --dirichlet 0.1 --seed 9 --prefix a d.blob > /dev/null
	fl-pack split --parts 4 --dirichlet 0.1 --seed 9 --prefix b d.blob > /dev/null
	for i in 1 2 3 4; do cmp a$i.blob b$i.blob; done
	run -0 fl-pack split --parts 4 --dirichlet 0.1 --seed 9 --json --prefix c d.blob
	run -0 /usr/bin/python3 -c "
import json, sys
p = json.loads(sys.argv[1])
assert sum(q['samples'] for q in p) == 600 and all(q['samples'] > 0 for q in p)
skew = sum(max(q['classes']) / q['samples'] for q in p) / len(p)
assert skew > 0.4, skew
print('ok')" "$output"
	assert_output "ok"
}

@test "split: more parts than examples, targets with Dirichlet, a model: exit 10, nothing written" {
	printf '1,0\n2,1\n' > two.csv
	fl-pack dataset --csv two.csv -o d.blob
	run -10 --separate-stderr fl-pack split --parts 3 --prefix p d.blob
	assert_regex "$stderr" "cannot split 2 examples into 3 non-empty parts"
	[ ! -e p1.blob ]
	fl-pack dataset --csv two.csv --targets 1 -o t.blob
	run -10 fl-pack split --parts 2 --dirichlet 0.5 --prefix p t.blob
	run -0 fl-pack split --parts 2 --prefix p t.blob
	[ -e p2.blob ]
	fl-pack import "$FIXTURES/mlp_ce.safetensors" > m.blob 2>/dev/null
	run -10 --separate-stderr fl-pack split --parts 2 --prefix q m.blob
	assert_regex "$stderr" "a model blob, not a dataset"
	run -2 fl-pack split d.blob
	run -2 fl-pack split --parts 0 d.blob
	run -2 fl-pack split --parts 2 --dirichlet -1 d.blob
	[ ! -e q1.blob ]
}
