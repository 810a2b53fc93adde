# bash completion for fl-pack
_fl_pack() {
	local cur prev cmd opts
	_init_completion || return
	if [[ $cword -eq 1 ]]; then
		COMPREPLY=($(compgen -W 'init info verify convert dataset split
		    export import --help --version' -- "$cur"))
		return
	fi
	cmd=${words[1]}
	case $prev in
	-o|--output|--csv)
		_filedir
		return ;;
	--idx)
		_filedir '@(gz|*ubyte)'
		return ;;
	--loss)
		COMPREPLY=($(compgen -W 'softmax-ce mse' -- "$cur"))
		return ;;
	--dtype)
		COMPREPLY=($(compgen -W 'f32 f16 bf16' -- "$cur"))
		return ;;
	--to)
		COMPREPLY=($(compgen -W 'safetensors npz' -- "$cur"))
		return ;;
	--arch|--seed|--label-column|--targets|--parts|--dirichlet|--prefix)
		return ;;
	esac
	case $cmd in
	init) opts='--arch --seed --loss -o --output' ;;
	info) opts='--json' ;;
	verify) opts='' ;;
	convert) opts='--dtype --compress --no-compress -o --output' ;;
	dataset) opts='--csv --label-column --targets --header --idx --normalize -o --output' ;;
	split) opts='--parts --dirichlet --seed --prefix --json' ;;
	export) opts='--to -o --output' ;;
	import) opts='--arch --loss -o --output' ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts -q --quiet -v --verbose -h --help" -- "$cur"))
		return
	fi
	case $cmd in
	import) _filedir '@(safetensors|npz)' ;;
	*) _filedir ;;
	esac
}
complete -F _fl_pack fl-pack
