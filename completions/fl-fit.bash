# bash completion for fl-fit
_fl_fit() {
	local cur prev
	_init_completion || return
	case $prev in
	-l|--local|-o|--output)
		_filedir blob
		return ;;
	--optimizer)
		COMPREPLY=($(compgen -W 'sgd adam' -- "$cur"))
		return ;;
	--epochs|--batch|--lr|--momentum|--weight-decay|--prox|--seed|\
	--max-steps|--threads|--client|--mc-dropout|-d|--dataset|--min|\
	--timeout|--parallel|--connect-timeout|--retry)
		return ;;
	--cacert)
		_filedir
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '-l --local -o --output --epochs --batch
		    --lr --optimizer --momentum --nesterov --weight-decay --prox
		    --seed --max-steps --threads --client --eval --json --predict
		    --mc-dropout -d --dataset --pointers --min --timeout --parallel
		    --connect-timeout --retry --cacert --insecure -q --quiet
		    -v --verbose -h --help --version' -- "$cur"))
		return
	fi
	# after --dataset: the workers of the workers file
	local wf=${FL_WORKERS:-${XDG_CONFIG_HOME:-$HOME/.config}/flkit/workers}
	if [[ -r $wf ]]; then
		COMPREPLY=($(compgen -W "$(awk '!/^#/ && NF {print $1}' "$wf")" -- "$cur"))
	fi
}
complete -F _fl_fit fl-fit
