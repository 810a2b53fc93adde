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
	--max-steps|--threads|--client|--mc-dropout)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '-l --local -o --output --epochs --batch
		    --lr --optimizer --momentum --nesterov --weight-decay --prox
		    --seed --max-steps --threads --client --eval --json --predict
		    --mc-dropout -q --quiet -v --verbose -h --help --version' \
		    -- "$cur"))
		return
	fi
}
complete -F _fl_fit fl-fit
