# bash completion for fl-avg
_fl_avg() {
	local cur prev
	_init_completion || return
	case $prev in
	-o|--output|--base|--state)
		_filedir blob
		return ;;
	--method)
		COMPREPLY=($(compgen -W 'mean median trimmed-mean krum' -- "$cur"))
		return ;;
	--server-opt)
		COMPREPLY=($(compgen -W 'sgd momentum adam yogi adagrad' -- "$cur"))
		return ;;
	--weights|--trim|--byzantine|--multi|--server-lr|--server-momentum|\
	--server-beta2|--tau|--clip|--noise|--seed|--threads|--connect-timeout|\
	--timeout|--retry)
		return ;;
	--cacert)
		_filedir
		return ;;
	--on)
		local wf=${FL_WORKERS:-${XDG_CONFIG_HOME:-$HOME/.config}/flkit/workers}
		[[ -r $wf ]] && COMPREPLY=($(compgen -W "$(awk '!/^#/ && NF {print $1}' "$wf")" -- "$cur"))
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '-o --output --uniform --weights --method
		    --trim --byzantine --multi --skip-bad --base --server-opt
		    --server-lr --server-momentum --server-beta2 --tau --state
		    --clip --noise --seed --threads --on --connect-timeout --timeout
		    --retry --cacert --insecure -q --quiet -v --verbose
		    -h --help --version' -- "$cur"))
		return
	fi
	_filedir blob
}
complete -F _fl_avg fl-avg
