#!/usr/bin/env bats
# fl-serve: POST /v1/fit/KEY, training on the worker; curl(1) as the client.

setup_file() {
	load test_helper
	export D="$BATS_FILE_TMPDIR"
	cd "$D" || return 1
	echo "rwtoken-0123456789 read write" > tokens
	fl-pack dataset --header --csv "$FIXTURES/small.csv" -o train.blob
	fl-pack init --arch 4,4,relu,3 --seed 1 -o m.blob
	fl-pack init --arch 5,4,relu,3 --seed 1 -o wide.blob
	export PF=$(free_port)
	fl-serve -q --name carol --listen 127.0.0.1:$PF --store "$D/sf" \
		--token-file tokens --dataset train="$D/train.blob" 3>&- 2>"$D/f.log" &
	echo $! > "$D/f.pid"
	wait_for curl -sf http://127.0.0.1:$PF/v1/health
}

teardown_file() {
	stop_server "$(cat "$BATS_FILE_TMPDIR/f.pid")" "$BATS_FILE_TMPDIR/f.log"
}

setup() {
	load test_helper
	common_setup
	F=http://127.0.0.1:$PF
	RW=(-H "Authorization: Bearer rwtoken-0123456789")
	J=(-H "Accept: application/json")
}

# fit QUERY FILE: print the HTTP status, the reply into ./body
fit() {
	curl -s -o body -w '%{http_code}' "${RW[@]}" "${J[@]}" \
		-H "Content-Type: application/x-flkit-blob" \
		--data-binary @"$2" "$F/v1/fit/$1"
}

# meta FILE KEY: a key of a blob's meta
meta() {
	fl-pack info --json "$1" | python3 -c 'import json,sys
h = json.load(sys.stdin)
h = h[0] if isinstance(h, list) else h
print(h["meta"].get(sys.argv[1]))' "$2"
}

@test "fl-serve fit: trains on the worker, stores the result, meta stamped" {
	run -0 fit "train?epochs=2&batch=4&lr=0.05&seed=3" "$D/m.blob"
	assert_output 201
	run -0 python3 -c 'import json; b = json.load(open("body"))
assert len(b["id"]) == 16 and b["kind"] == "model", b
assert b["samples"] > 0 and "train_loss" in b["metrics"], b
print(b["id"], b["samples"])'
	read -r id samples <<< "$output"
	curl -sf "${RW[@]}" -o out.blob "$F/v1/objects/$id"
	run -0 fl-pack verify out.blob
	run -0 meta out.blob samples
	assert_output "$samples"
	run -0 meta out.blob client
	assert_output carol
	parent=$(meta "$D/m.blob" model_id)
	run -0 meta out.blob parent_id
	assert_output "$parent"
	# the newest model: fl-get WORKER; and tagged
	curl -sf "${RW[@]}" -o latest.blob "$F/v1/latest"
	cmp out.blob latest.blob
	curl -sf "${RW[@]}" -o tagged.blob "$F/v1/tags/latest-fit"
	cmp out.blob tagged.blob
	# the same as fl-fit --local with the same options
	fl-fit -q --local "$D/train.blob" --epochs 2 --batch 4 --lr 0.05 --seed 3 \
		--threads 1 < "$D/m.blob" > local.blob
	run -0 meta local.blob samples
	assert_output "$samples"
}

@test "fl-serve fit: fits one after another, of one arch and of another, each train as fl-fit --local does" {
	# A worker's fit thread keeps its network from one fit to the next:
	# nothing of one fit may show in another.
	fl-pack init --arch 4,8,relu,3 --seed 5 -o "$D/other.blob"
	for m in m other m m other; do
		run -0 curl -sf -o "r-$m.blob" "${RW[@]}" \
			-H "Accept: application/x-flkit-blob" \
			-H "Content-Type: application/x-flkit-blob" \
			--data-binary @"$D/$m.blob" "$F/v1/fit/train?epochs=2&batch=4&lr=0.05&seed=3"
		fl-fit -q --local "$D/train.blob" --epochs 2 --batch 4 --lr 0.05 --seed 3 \
			--threads 1 < "$D/$m.blob" > "l-$m.blob"
		remote=$(tensors "r-$m.blob")
		[ "$remote" = "$(tensors "l-$m.blob")" ]
		[ "$remote" != "$(tensors "$D/$m.blob")" ]	# it did train
	done
	# an evaluation between fits, with its own batch size
	run -0 curl -s -o body -w '%{http_code}' "${RW[@]}" "${J[@]}" \
		--data-binary @"$D/m.blob" "$F/v1/eval/train"
	assert_output 200
	run -0 curl -sf -o r2.blob "${RW[@]}" -H "Accept: application/x-flkit-blob" \
		--data-binary @"$D/m.blob" "$F/v1/fit/train?epochs=2&batch=4&lr=0.05&seed=3"
	[ "$(tensors r2.blob)" = "$(tensors l-m.blob)" ]
}

@test "fl-serve fit: asked for a blob, the reply is the stored result" {
	run -0 curl -s -D hdrs -o reply.blob -w '%{http_code}' "${RW[@]}" \
		-H "Accept: application/x-flkit-blob" \
		-H "Content-Type: application/x-flkit-blob" \
		--data-binary @"$D/m.blob" "$F/v1/fit/train?epochs=1&seed=2"
	assert_output 201
	run -0 fl-pack verify reply.blob
	grep -qi '^content-type: application/x-flkit-blob' hdrs
	id=$(tr -d '\r' < hdrs | sed -n 's,^[Ll]ocation: /v1/objects/\([0-9a-f]*\)$,\1,p')
	[ "${#id}" -eq 16 ]
	curl -sf "${RW[@]}" -o stored.blob "$F/v1/objects/$id"
	cmp reply.blob stored.blob
	run -0 meta reply.blob client
	assert_output carol
	# an evaluation answers with its figures whatever the client accepts
	run -0 curl -s -o body -w '%{http_code}' "${RW[@]}" \
		-H "Accept: application/x-flkit-blob, application/json" \
		--data-binary @"$D/m.blob" "$F/v1/eval/train"
	assert_output 200
	run -0 python3 -c 'import json; b = json.load(open("body")); print(b["samples"])'
	assert_output 30
}

@test "fl-serve fit: unknown dataset 404, bad option 400, not a model 400" {
	run -0 fit "nope" "$D/m.blob"
	assert_output 404
	run -0 cat body
	assert_output --partial "no dataset 'nope'"
	run -0 fit "train?epochs=0" "$D/m.blob"
	assert_output 400
	run -0 cat body
	assert_output --partial "epochs"
	run -0 fit "train?lr=fast" "$D/m.blob"
	assert_output 400
	run -0 fit "train?colour=blue" "$D/m.blob"
	assert_output 400
	run -0 cat body
	assert_output --partial "unknown training option 'colour'"
	run -0 fit "train?optimizer=adam&momentum=0.9" "$D/m.blob"
	assert_output 400
	# 17 options: the 17th was copied past the end of a stack array
	run -0 fit "train?$(printf 'seed=%d&' $(seq 17))" "$D/m.blob"
	assert_output 400
	run -0 cat body
	assert_output --partial "too many options"
	run -0 curl -sf "$F/v1/health"
	echo "not a blob" > junk
	run -0 fit train junk
	assert_output 400
	run -0 fit train "$D/train.blob"
	assert_output 400
	run -0 cat body
	assert_output --partial "not a model"
}

@test "fl-serve fit: a model of the wrong width is refused with the reason" {
	run -0 fit train "$D/wide.blob"
	assert_output 422
	run -0 cat body
	assert_output --partial "does not fit dataset train"
}

# newest: the id of the newest model on the worker and its client
newest() {
	curl -sf "${RW[@]}" "${J[@]}" "$F/v1/objects" | python3 -c 'import json,sys
o = [o for o in json.load(sys.stdin)["objects"] if o["kind"] == "model"]
print(o[0]["id"], o[0]["meta"].get("client")) if o else print("none")'
}

@test "fl-serve fit: a client that leaves mid-fit does not lose the result" {
	local epochs=60000 tries=100
	# valgrind runs the fit some 30 times slower
	[ -n "$VALGRIND" ] && epochs=2000 tries=600
	before=$(newest)
	# about a second of training; the client gives up after 0.3 s
	run curl -s -m 0.3 "${RW[@]}" --data-binary @"$D/m.blob" \
		"$F/v1/fit/train?epochs=$epochs&batch=1"
	assert_failure
	for i in $(seq $tries); do
		now=$(newest)
		[ "$now" != "$before" ] && [ "${now#* }" = carol ] && break
		sleep 0.1
	done
	refute [ "$now" = "$before" ]
	assert_equal "${now#* }" carol
	curl -sf "${RW[@]}" -o left.blob "$F/v1/objects/${now% *}"
	run -0 fl-pack verify left.blob
	run -0 meta left.blob parent_id
	assert_output "$(meta "$D/m.blob" model_id)"
}

@test "fl-serve fits: GET /v1/fits lists a fit under way with its progress" {
	# long enough to be listed while it runs: under valgrind, 2000 epochs
	# once ended before the third listing below
	local epochs=60000
	[ -n "$VALGRIND" ] && epochs=20000
	run -0 curl -s -o /dev/null -w '%{http_code}' "$F/v1/fits"
	assert_output 401
	run -0 curl -s -o /dev/null -w '%{http_code}' "${RW[@]}" \
		--data-binary @"$D/m.blob" "$F/v1/fit/train?job=../x"
	assert_output 400
	curl -s "${RW[@]}" -o fitted --data-binary @"$D/m.blob" \
		"$F/v1/fit/train?epochs=$epochs&batch=1&job=round-7" 3>&- &
	local pid=$!
	for i in $(seq 300); do
		curl -sf "${RW[@]}" "${J[@]}" "$F/v1/fits?job=round-7" > fits
		grep -q '"epoch"' fits && break
		sleep 0.05
	done
	# another job, or any: asked at once, while the fit still runs
	curl -sf "${RW[@]}" "${J[@]}" "$F/v1/fits?job=round-8" > other
	curl -sf "${RW[@]}" "${J[@]}" "$F/v1/fits" > all
	run -0 python3 -c 'import json, time; f = json.load(open("fits"))["fits"]
assert len(f) == 1, f
f = f[0]
assert f["job"] == "round-7" and f["mode"] == "fit" and f["dataset"] == "train", f
assert f["epochs"] == '"$epochs"' and 1 <= f["epoch"] <= f["epochs"], f
assert f["steps"] > 0 and f["loss"] >= 0 and 0 < f["started"] <= time.time(), f'
	run -0 python3 -c 'import json; assert json.load(open("other")) == {"fits": []}'
	run -0 python3 -c 'import json; assert len(json.load(open("all"))["fits"]) == 1'
	wait $pid
	curl -sf "${RW[@]}" "${J[@]}" "$F/v1/fits" > after
	run -0 python3 -c 'import json; assert json.load(open("after")) == {"fits": []}'
}
