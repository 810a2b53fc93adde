# bash completion for fl-get
_fl_get_workers() {
	local f=${FL_WORKERS:-${XDG_CONFIG_HOME:-$HOME/.config}/flkit/workers}
	[ -r "$f" ] && awk '!/^[ \t]*(#|$)/ { print $1 }' "$f"
}
_fl_get() {
	local cur prev
	_init_completion || return
	case $prev in
	-o|--output|--cacert)
		_filedir
		return ;;
	--connect-timeout|--timeout|--retry)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '-o --output --no-follow --list --info --json
		    --delete --connect-timeout --timeout --retry --cacert --insecure
		    -q --quiet -v --verbose -h --help --version' -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -W "$(_fl_get_workers)" -- "$cur"))
}
complete -F _fl_get fl-get
