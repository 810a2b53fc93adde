#!/usr/bin/env bats
# fl-fit --local: training, --eval, --predict, every option and bad input,
# on tiny synthetic datasets.

load test_helper
bats_require_minimum_version 1.5.0

stderr_has() { [[ "$stderr" == *"$1"* ]] || { echo "stderr: $stderr"; false; }; }

mk() { python3 "$FIXTURES/mkblob.py" "$@"; }
meta() { dump "$1" | python3 -c 'import json,sys; b=json.loads(sys.stdin.readline()); print(json.dumps(b["meta"]["'"$2"'"], separators=(",",":")))'; }

# ds FILE N FEATURES CLASSES [YDTYPE [TARGETS]]: a separable toy dataset:
# class c adds 2 to feature c mod FEATURES. YDTYPE i32 (default), u8, i64,
# or f32 with TARGETS k float targets per example (y = onehot * 2 - 1), or
# none for no y at all (inputs for --predict).
ds() {
	python3 - "$FIXTURES" "$@" <<'PY'
import random, sys
sys.path.insert(0, sys.argv[1])
import mkblob
mkblob.FMT.update({"i32": "i", "u8": "B", "i64": "q"})
path, n, f, c = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
yt = sys.argv[6] if len(sys.argv) > 6 else "i32"
random.seed(n * 31 + f)
x, y = [], []
for i in range(n):
    k = i % c
    r = [random.gauss(0, 0.3) for _ in range(f)]
    r[k % f] += 2
    x += r
    y.append(k)
meta = {"samples": n}
if yt == "none":
    ys = None
elif yt == "f32":
    k = int(sys.argv[7])
    ys = ["y", "f32", [n, k], [2.0 * (j == v % k) - 1 for v in y for j in range(k)]]
else:
    meta["classes"] = c
    ys = ["y", yt, [n], y]
mkblob.write(path, {"kind": "dataset", "meta": meta,
                    "tensors": [["x", "f32", [n, f], x]] + ([ys] if ys else [])})
PY
}

setup_file() {
	cd "$BATS_FILE_TMPDIR"
	ds toy.blob 120 4 3
	fl-pack init --arch 4,8,relu,3 --seed 1 >m.blob
}

setup() {
	common_setup
	cp "$BATS_FILE_TMPDIR"/toy.blob "$BATS_FILE_TMPDIR"/m.blob .
}

@test "fl-fit: trains, and the output meta tells its story" {
	# A model with a round, an id and a key fl-fit does not know.
	dump m.blob | python3 -c '
import json, sys
b = json.loads(sys.stdin.readline())
m = b["meta"]; m["round"] = 4; m["model_id"] = "id-global"; m["x-keep"] = "yes"
shape = {"0.weight": [8, 4], "0.bias": [8], "2.weight": [3, 8], "2.bias": [3]}
print(json.dumps({"kind": "model", "meta": m,
    "tensors": [[k, "f32", shape[k], v] for k, v in b["tensors"].items()]}))' >spec.json
	mk g.blob "$(cat spec.json)"
	run -0 bash -c 'fl-fit --local toy.blob --epochs 10 --lr 0.1 --batch 16 <g.blob >out.blob'
	assert_output ''
	run -0 meta out.blob samples;   assert_output 120
	run -0 meta out.blob round;     assert_output 4
	run -0 meta out.blob parent_id; assert_output '"id-global"'
	run -0 meta out.blob x-keep;    assert_output '"yes"'
	run -0 meta out.blob client;    assert_output "\"$(hostname)\""
	run -0 meta out.blob producer;  assert_output --partial 'fl-fit'
	run -0 meta out.blob model_id
	refute_output '"id-global"'
	[[ "$output" =~ ^\"[0-9a-f-]{36}\"$ ]]
	run -0 meta out.blob fit
	assert_output --partial '"epochs":10'
	assert_output --partial '"steps":80'
	assert_output --partial '"batch":16'
	run -0 meta out.blob metrics
	assert_output --partial '"train_loss":'
	assert_output --partial '"train_accuracy":'
	# Training helped.
	run -0 bash -c 'fl-fit --eval --json --local toy.blob <g.blob'
	before=$(echo "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)["loss"])')
	run -0 bash -c 'fl-fit --eval --json --local toy.blob <out.blob'
	after=$(echo "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)["loss"])')
	python3 -c "import sys; sys.exit(not $after < $before / 2)"
}

@test "fl-fit: --client, -o FILE, -q and -v" {
	run -0 --separate-stderr fl-fit --local toy.blob --client alice -o out.blob <m.blob
	assert_output ''
	[ -z "$stderr" ]
	run -0 meta out.blob client; assert_output '"alice"'
	run -0 --separate-stderr fl-fit -v --local toy.blob --epochs 2 -o v.blob <m.blob
	stderr_has 'epoch 1/2: loss'
	stderr_has 'epoch 2/2: loss'
	stderr_has 'samples/s'
	run -0 --separate-stderr fl-fit -q --local toy.blob -o q.blob <m.blob
	[ -z "$stderr" ]
}

@test "fl-fit: --seed gives the same model again, another seed another" {
	fl-fit --local toy.blob --seed 3 <m.blob >a.blob
	fl-fit --local toy.blob --seed 3 <m.blob >b.blob
	fl-fit --local toy.blob --seed 4 <m.blob >c.blob
	[ "$(tensors a.blob)" = "$(tensors b.blob)" ]
	[ "$(tensors a.blob)" != "$(tensors c.blob)" ]
	run -0 meta a.blob fit; assert_output --partial '"seed":3'
}

@test "fl-fit: --epochs, --batch and --max-steps" {
	fl-fit --local toy.blob --epochs 2 --batch 7 <m.blob >a.blob
	run -0 meta a.blob fit
	assert_output --partial '"steps":36'
	fl-fit --local toy.blob --epochs 5 --batch 10 --max-steps 3 <m.blob >b.blob
	run -0 meta b.blob fit
	assert_output --partial '"steps":3'
	assert_output --partial '"epochs":1'
	run -0 meta b.blob samples; assert_output 30
	fl-fit --local toy.blob --batch 1000 <m.blob >c.blob
	run -0 meta c.blob fit; assert_output --partial '"steps":1'
	run -2 fl-fit --local toy.blob --epochs 0 <m.blob
	run -2 fl-fit --local toy.blob --batch 0 <m.blob
	run -2 fl-fit --local toy.blob --max-steps 0 <m.blob
	run -2 fl-fit --local toy.blob --epochs x <m.blob
}

@test "fl-fit: --optimizer, --lr, --momentum, --nesterov, --weight-decay, --prox" {
	fl-fit --local toy.blob <m.blob >sgd.blob
	for o in "--lr 0.05" "--momentum 0.9" "--momentum 0.9 --nesterov" \
	    "--weight-decay 0.1" "--prox 1" "--optimizer adam" \
	    "--optimizer adam --lr 0.01 --weight-decay 0.01"; do
		fl-fit --local toy.blob $o <m.blob >o.blob
		[ "$(tensors o.blob)" != "$(tensors sgd.blob)" ] || { echo "$o changed nothing"; false; }
	done
	run -0 meta o.blob fit
	assert_output --partial '"optimizer":"adam"'
	assert_output --partial '"lr":0.01'
	# FedProx keeps the model nearer the one received.
	fl-fit --local toy.blob --epochs 5 --lr 0.1 <m.blob >free.blob
	fl-fit --local toy.blob --epochs 5 --lr 0.1 --prox 10 <m.blob >prox.blob
	run -0 python3 - "$FIXTURES/mkblob.py" <<'PY'
import json, subprocess, sys
def t(p):
    o = subprocess.run(["python3", sys.argv[1], "--dump", p],
                       capture_output=True, text=True).stdout
    return json.loads(o.splitlines()[0])["tensors"]
w0, a, b = t("m.blob"), t("free.blob"), t("prox.blob")
d = lambda u: sum((x - y) ** 2 for k in w0 for x, y in zip(u[k], w0[k])) ** 0.5
print(d(a), d(b))
sys.exit(not d(b) < d(a) / 2)
PY
	run -0 meta prox.blob fit; assert_output --partial '"prox":10'
	run -2 --separate-stderr fl-fit --local toy.blob --optimizer rmsprop <m.blob
	stderr_has "unknown optimizer 'rmsprop'"
	run -2 --separate-stderr fl-fit --local toy.blob --nesterov <m.blob
	stderr_has '--nesterov needs --momentum'
	run -2 fl-fit --local toy.blob --optimizer adam --momentum 0.9 <m.blob
	run -2 fl-fit --local toy.blob --lr -1 <m.blob
	run -2 fl-fit --local toy.blob --prox -1 <m.blob
	run -2 fl-fit --local toy.blob --momentum 2 <m.blob
}

@test "fl-fit: --threads" {
	fl-fit --local toy.blob --threads 2 <m.blob >a.blob
	fl-fit --local toy.blob --threads 2 <m.blob >b.blob
	[ "$(tensors a.blob)" = "$(tensors b.blob)" ]
	# 2 is the default, and the meta says so.
	fl-fit --local toy.blob <m.blob >c.blob
	[ "$(tensors a.blob)" = "$(tensors c.blob)" ]
	run -0 meta c.blob fit; assert_output --partial '"threads":2'
	# Another count: another order of sums, much the same model.
	fl-fit --local toy.blob --epochs 10 --lr 0.1 --batch 16 --threads 1 <m.blob >one.blob
	fl-fit --local toy.blob --epochs 10 --lr 0.1 --batch 16 --threads 2 <m.blob >two.blob
	fl-fit --local toy.blob --epochs 10 --lr 0.1 --batch 16 --threads 2 <m.blob >two2.blob
	fl-fit --local toy.blob --epochs 10 --lr 0.1 --batch 16 --threads 3 <m.blob >three.blob
	[ "$(tensors two.blob)" = "$(tensors two2.blob)" ]
	[ "$(tensors one.blob)" != "$(tensors two.blob)" ]
	run -0 meta one.blob fit; assert_output --partial '"threads":1'
	for f in one two three; do
		fl-fit --eval --json --local toy.blob <$f.blob >$f.json
	done
	python3 - <<'PY'
import json
r = {f: json.load(open(f + ".json")) for f in ("one", "two", "three")}
for f in ("two", "three"):
    assert abs(r[f]["loss"] - r["one"]["loss"]) < 1e-3, r
    assert abs(r[f]["accuracy"] - r["one"]["accuracy"]) < 0.01, r
PY
	# For --eval, threads of the dense math: the same figures.
	run -0 fl-fit --eval --json --threads 2 --local toy.blob <one.blob
	assert_output "$(cat one.json)"
	run -2 fl-fit --local toy.blob --threads 0 <m.blob
}

@test "fl-fit: u8 and i64 labels, f16 and bf16 models, compressed input" {
	ds u8.blob 60 4 3 u8
	ds i64.blob 60 4 3 i64
	fl-fit --local u8.blob <m.blob >a.blob
	fl-fit --local i64.blob <m.blob >b.blob
	fl-pack convert --dtype f16 m.blob >h.blob
	fl-pack convert --dtype bf16 --compress m.blob >bf.blob
	fl-fit --local toy.blob <h.blob >c.blob
	fl-fit --local toy.blob <bf.blob >d.blob
	run -0 bash -c "python3 '$FIXTURES/mkblob.py' --dump c.blob | grep -c '\"0.weight\": \"f32\"'"
	assert_output 1
}

@test "fl-fit: mse models train on float targets" {
	ds reg.blob 50 4 2 f32 2
	fl-pack init --arch 4,8,tanh,2 --loss mse >r.blob
	run -0 bash -c 'fl-fit --local reg.blob --epochs 3 --lr 0.1 <r.blob >o.blob'
	run -0 meta o.blob metrics
	assert_output --partial train_loss
	refute_output --partial train_accuracy
	run -0 fl-fit --eval --local reg.blob <o.blob
	assert_line --index 0 --regexp '^loss +[0-9.e-]+$'
	assert_line --index 1 --regexp '^samples +50$'
	run -10 --separate-stderr fl-fit --local toy.blob <r.blob
	stderr_has 'class labels'
	run -10 --separate-stderr fl-fit --local reg.blob <m.blob
	stderr_has 'float targets'
}

@test "fl-fit --eval: a table, --json, nothing else on stdout" {
	run -0 --separate-stderr fl-fit --eval --local toy.blob <m.blob
	[ "${#lines[@]}" -eq 3 ]
	assert_line --index 0 --regexp '^loss +[0-9.]+$'
	assert_line --index 1 --regexp '^accuracy +[0-9.]+$'
	assert_line --index 2 --regexp '^samples +120$'
	[ -z "$stderr" ]
	run -0 fl-fit --eval --json --local toy.blob --batch 7 <m.blob
	[ "${#lines[@]}" -eq 1 ]
	echo "$output" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert set(d) == {"loss", "accuracy", "samples"} and d["samples"] == 120
assert 0 <= d["accuracy"] <= 1 and d["loss"] > 0'
	run -2 fl-fit --eval --local toy.blob --lr 0.1 <m.blob
	run -2 fl-fit --eval --local toy.blob -o x.blob <m.blob
	run -2 fl-fit --json --local toy.blob <m.blob
	run -2 fl-fit --eval --predict --local toy.blob <m.blob
}

@test "fl-fit --predict: probabilities as CSV, or a blob with -o" {
	run -0 --separate-stderr fl-fit --predict --local toy.blob <m.blob
	[ "${#lines[@]}" -eq 121 ]
	assert_line --index 0 'p0,p1,p2'
	echo "$output" | awk -F, 'NR > 1 { s = $1 + $2 + $3; if (NF != 3 || s < 0.9999 || s > 1.0001) exit 1 }'
	# Inputs need no labels.
	ds x.blob 120 4 3 none
	run -0 fl-fit --predict --local x.blob <m.blob
	[ "${#lines[@]}" -eq 121 ]
	fl-fit --predict --local x.blob -o p.blob <m.blob
	run -0 bash -c "python3 '$FIXTURES/mkblob.py' --dump p.blob | python3 -c 'import json,sys; b=json.loads(sys.stdin.readline()); print(b[\"kind\"], len(b[\"tensors\"][\"output\"]), b[\"meta\"][\"samples\"])'"
	assert_output 'predictions 360 120'
	run -10 --separate-stderr fl-fit --predict --local m.blob <m.blob
	stderr_has 'not a dataset'
}

@test "fl-fit --predict --mc-dropout: mean, std and entropy per row" {
	fl-pack init --arch 4,16,relu,dropout:0.5,3 >d.blob
	run -0 fl-fit --predict --mc-dropout 20 --local toy.blob <d.blob
	[ "${#lines[@]}" -eq 121 ]
	assert_line --index 0 'mean0,mean1,mean2,std0,std1,std2,entropy'
	echo "$output" | awk -F, 'NR > 1 { if (NF != 7 || $7 < 0 || $7 > 1.0987) exit 1; s += $4 } END { exit !(s > 0) }'
	run -0 fl-fit --predict --mc-dropout 20 --local toy.blob <d.blob
	first=$output
	run -0 fl-fit --predict --mc-dropout 20 --seed 1 --local toy.blob <d.blob
	[ "$output" != "$first" ]
	fl-fit --predict --mc-dropout 5 --local toy.blob -o p.blob <d.blob
	run -0 bash -c "python3 '$FIXTURES/mkblob.py' --dump p.blob | python3 -c 'import json,sys; b=json.loads(sys.stdin.readline()); print(sorted(b[\"tensors\"]), b[\"meta\"][\"mc_dropout\"])'"
	assert_output "['entropy', 'output', 'std'] 5"
	run -2 fl-fit --mc-dropout 5 --local toy.blob <d.blob
	run -2 fl-fit --predict --mc-dropout 0 --local toy.blob <d.blob
}

@test "fl-fit: a dataset whose width is not the model's input" {
	ds wide.blob 20 5 3
	run -10 --separate-stderr fl-fit --local wide.blob -o out.blob <m.blob
	stderr_has 'wide.blob: dataset has 5 features per example, the model takes 4'
	[ ! -e out.blob ]
	run -10 fl-fit --eval --local wide.blob <m.blob
	run -10 --separate-stderr fl-fit --predict --local wide.blob <m.blob
	stderr_has '5 features'
}

@test "fl-fit: labels outside the model's outputs" {
	ds five.blob 20 4 5
	run -10 --separate-stderr fl-fit --local five.blob <m.blob
	stderr_has 'label 3, but the model has 3 outputs'
	[ -z "$output" ]
	run -10 fl-fit --eval --local five.blob <m.blob
}

@test "fl-fit: a model with an unknown layer" {
	mk conv.blob '{"kind":"model","meta":{"arch":[{"type":"linear","in":4,"out":3},{"type":"conv2d"}],"loss":"softmax-ce"},"tensors":[["0.weight","f32",[3,4],[0,0,0,0,0,0,0,0,0,0,0,0]],["0.bias","f32",[3],[0,0,0]]]}'
	run -10 --separate-stderr fl-fit --local toy.blob <conv.blob
	stderr_has "unknown layer type 'conv2d'"
}

@test "fl-fit: a loss that turns NaN writes nothing" {
	echo old >out.blob
	run -10 --separate-stderr fl-fit --local toy.blob --lr 1e30 -o out.blob <m.blob
	stderr_has 'the loss became'
	stderr_has 'smaller learning rate'
	[ "$(cat out.blob)" = old ]
	[ "$(ls | grep -c out)" = 1 ]
	run -10 --separate-stderr bash -c 'fl-fit --local toy.blob --lr 1e30 <m.blob >o.blob'
	[ ! -s o.blob ]
}

@test "fl-fit: not a model, corrupt, or nothing on standard input" {
	run -10 --separate-stderr fl-fit --local toy.blob <toy.blob
	stderr_has 'a dataset blob, not a model'
	cp m.blob bad.blob
	size=$(wc -c <bad.blob)
	flip_byte bad.blob $((size - 64))
	run -4 --separate-stderr fl-fit --local toy.blob <bad.blob
	stderr_has '2.bias'
	run -4 --separate-stderr fl-fit --local toy.blob </dev/null
	stderr_has 'empty'
	head -c 100 m.blob >short.blob
	run -4 fl-fit --local toy.blob <short.blob
	echo 'not a blob' >text.blob
	run -4 fl-fit --local toy.blob <text.blob
	run -4 fl-fit --local text.blob <m.blob
	run -6 --separate-stderr fl-fit --local nosuch.blob <m.blob
	stderr_has 'nosuch.blob'
}

@test "fl-fit: usage errors, workers without --dataset, --help, --version" {
	run -2 --separate-stderr fl-fit <m.blob
	stderr_has 'usage:'
	run -2 --separate-stderr fl-fit --local toy.blob alice bob <m.blob
	stderr_has 'workers go with --dataset KEY'
	run -2 fl-fit --local - <m.blob
	run -2 fl-fit --bogus --local toy.blob <m.blob
	run -0 fl-fit --help
	assert_line --index 0 --partial 'usage: fl-fit --local DATASET'
	run -0 fl-fit --version
	assert_output --regexp '^fl-fit \(flkit\) [0-9]'
}

@test "fl-fit: the man page and completions list the options of --help" {
	for o in $(grep -o '^\.It Fl \(-[a-z-]*\|[a-z]\)' "$FLKIT_ROOT/man/fl-fit.1" | awk '{print $3}'); do
		fl-fit -h | grep -q -- "-$o" || { echo "man lists -$o, --help does not"; false; }
	done
	for o in $(fl-fit -h | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
		grep -q -- "Fl $o\\b" "$FLKIT_ROOT/man/fl-fit.1" || grep -q -- "Fl -${o#--}" "$FLKIT_ROOT/man/fl-fit.1" || { echo "man lacks $o"; false; }
		for c in "$FLKIT_ROOT/completions/fl-fit.bash" "$FLKIT_ROOT/completions/_fl-fit"; do
			grep -q -- "$o" "$c" || { echo "$c lacks $o"; false; }
		done
	done
	run -0 bash -c "groff -mandoc -Tutf8 -ww -z '$FLKIT_ROOT/man/fl-fit.1' 2>&1"
	assert_output ''
}

@test "fl-fit: refuses to write a blob to a terminal, before training" {
	command -v script >/dev/null || skip "no script(1)"
	ds d.blob 20 4 2
	fl-pack init --arch 4,2 -o m.blob
	run script -qec "fl-fit --local $BATS_TEST_TMPDIR/d.blob < $BATS_TEST_TMPDIR/m.blob" /dev/null
	assert_failure 2
	assert_output --partial 'refusing to write a blob to a terminal'
}
