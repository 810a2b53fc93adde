# workers.sh: start fl-serve workers on free loopback ports, for scripts
# (sourced by share/demo/run, share/examples/simulate.sh and bench/round.sh).
#
#   workers_init DIR          a fresh token in DIR, FL_WORKERS=DIR/workers
#   worker_start NAME ARGS... fl-serve --name NAME on 127.0.0.1, a free port,
#                             its store DIR/store/NAME (emptied), its log
#                             DIR/NAME.log, ARGS added (--dataset ...)
#   workers_wait              wait until each started worker listens, and
#                             write its line into the workers file
#   workers_stop              stop them all (also run on exit)
#   fashion_mnist [test]      pack Fashion-MNIST into ./train.blob (and
#                             ./test.blob) unless there already

workers_init() {
	wk_dir=$1
	wk_pids=
	wk_names=
	mkdir -p "$wk_dir"
	(umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$wk_dir/token")
	(umask 077; echo "$(cat "$wk_dir/token") read write" > "$wk_dir/tokens")
	: > "$wk_dir/workers"
	FL_WORKERS="$wk_dir/workers"
	export FL_WORKERS
	trap workers_stop EXIT
	trap 'workers_stop; exit 130' INT TERM
}

worker_start() {
	wk_name=$1
	shift
	rm -rf "$wk_dir/store/$wk_name"
	fl-serve --name "$wk_name" --listen 127.0.0.1:0 \
	    --store "$wk_dir/store/$wk_name" --token-file "$wk_dir/tokens" \
	    "$@" 2> "$wk_dir/$wk_name.log" &
	wk_pids="$wk_pids $!"
	wk_names="$wk_names $wk_name"
}

workers_wait() {
	for wk_name in $wk_names; do
		wk_port=
		for _ in $(seq 200); do
			wk_port=$(sed -n 's/.* listening on http:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' \
			    "$wk_dir/$wk_name.log")
			[ -n "$wk_port" ] && break
			sleep 0.05
		done
		if [ -z "$wk_port" ]; then
			cat "$wk_dir/$wk_name.log" >&2
			echo "worker $wk_name did not start" >&2
			return 1
		fi
		echo "$wk_name http://127.0.0.1:$wk_port $wk_dir/token" >> "$FL_WORKERS"
	done
}

workers_stop() {
	[ -n "${wk_pids:-}" ] || return 0
	kill $wk_pids 2>/dev/null || true
	wait $wk_pids 2>/dev/null || true
	wk_pids=
}

fashion_mnist() {
	fm_data=${FL_DATASETS:-/usr/share/datasets/fashion-mnist}
	if [ ! -f train.blob ]; then
		echo "packing Fashion-MNIST from $fm_data" >&2
		fl-pack dataset --idx "$fm_data/train-images-idx3-ubyte.gz" \
		    "$fm_data/train-labels-idx1-ubyte.gz" --normalize -o train.blob
	fi
	if [ "${1:-}" = test ] && [ ! -f test.blob ]; then
		fl-pack dataset --idx "$fm_data/t10k-images-idx3-ubyte.gz" \
		    "$fm_data/t10k-labels-idx1-ubyte.gz" --normalize -o test.blob
	fi
}
