#!/usr/bin/env bats
# Every program's bash and zsh completions and man page know every long
# option its --help lists, so they cannot drift apart.

setup() {
	load test_helper
}

long_opts() {	# long options named in a program's usage
	"$1" --help 2>&1 | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

@test "completions and man pages cover every option of --help" {
	local p name opt missing=""
	for p in "$FLKIT_ROOT"/bin/fl-*; do
		name=${p##*/}
		[ -f "$FLKIT_ROOT/completions/$name.bash" ] || missing+=" $name.bash"
		[ -f "$FLKIT_ROOT/completions/_$name" ] || missing+=" _$name"
		ls "$FLKIT_ROOT"/man/"$name".[18] >/dev/null 2>&1 || missing+=" man:$name"
		for opt in $(long_opts "$p"); do
			grep -q -- "$opt" "$FLKIT_ROOT/completions/$name.bash" 2>/dev/null ||
				missing+=" $name.bash:$opt"
			grep -q -- "$opt" "$FLKIT_ROOT/completions/_$name" 2>/dev/null ||
				missing+=" _$name:$opt"
			grep -q -- "${opt#--}" "$FLKIT_ROOT"/man/"$name".[18] 2>/dev/null ||
				missing+=" man/$name:$opt"
		done
	done
	[ -z "$missing" ] || { echo "missing:$missing"; false; }
}

@test "bash completions load and complete" {
	[ -f /usr/share/bash-completion/bash_completion ] || skip "bash-completion not installed"
	local f
	for f in "$FLKIT_ROOT"/completions/*.bash; do
		run -0 bash -c "source /usr/share/bash-completion/bash_completion; source '$f'"
	done
}

@test "man pages render without warnings" {
	command -v mandoc >/dev/null || command -v groff >/dev/null || skip "no roff"
	local m
	for m in "$FLKIT_ROOT"/man/*.[158]; do
		run -0 bash -c "LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$m' 2>&1 >/dev/null"
		assert_output ""
	done
}
