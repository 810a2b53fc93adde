# bash completion for fl-send
_fl_send_workers() {
	local f=${FL_WORKERS:-${XDG_CONFIG_HOME:-$HOME/.config}/flkit/workers}
	[ -r "$f" ] && awk '!/^[ \t]*(#|$)/ { print $1 }' "$f"
}
_fl_send() {
	local cur prev words cword
	_init_completion || return
	case $prev in
	--data|--cacert)
		_filedir
		return ;;
	--ref)
		COMPREPLY=($(compgen -W "$(_fl_send_workers)" -- "$cur"))
		return ;;
	--tag|--message|--put|--connect-timeout|--timeout|--retry)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '--tag --ref --message --data --put
		    --connect-timeout --timeout --retry --cacert --insecure
		    -q --quiet -v --verbose -h --help --version' -- "$cur"))
		return
	fi
	local i n=0
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--tag|--ref|--message|--data|--put|--connect-timeout|--timeout|--retry|--cacert) ((i++)) ;;
		-*) ;;
		*) ((n++)) ;;
		esac
	done
	if ((n == 0)); then
		COMPREPLY=($(compgen -W "$(_fl_send_workers)" -- "$cur"))
	else
		_filedir blob
	fi
}
complete -F _fl_send fl-send
