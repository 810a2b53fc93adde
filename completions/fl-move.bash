# bash completion for fl-move
_fl_move_workers() {
	local f=${FL_WORKERS:-${XDG_CONFIG_HOME:-$HOME/.config}/flkit/workers}
	[ -r "$f" ] && awk '!/^[ \t]*(#|$)/ { print $1 }' "$f"
}
_fl_move() {
	local cur prev
	_init_completion || return
	case $prev in
	--cacert)
		_filedir
		return ;;
	--connect-timeout|--timeout|--retry)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '--copy --connect-timeout --timeout --retry
		    --cacert --insecure -q --quiet -v --verbose -h --help --version' -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -W "$(_fl_move_workers)" -- "$cur"))
}
complete -F _fl_move fl-move
