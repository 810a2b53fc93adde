# bash completion for fl-serve
_fl_serve() {
	local cur prev
	_init_completion || return
	case $prev in
	--store)
		_filedir -d
		return ;;
	--token-file|--tls-cert|--tls-key)
		_filedir
		return ;;
	--dataset|--handler)
		return ;;
	--name|--listen|--handler-timeout|--max-object-bytes|--max-store-bytes|\
	--max-connections|--max-fits|--timeout)
		return ;;
	esac
	COMPREPLY=($(compgen -W '--name --listen --store --dataset --token-file
	    --insecure --tls-cert --tls-key --handler --handler-timeout
	    --max-object-bytes --max-store-bytes --max-connections --max-fits
	    --timeout -q --quiet
	    -v --verbose -h --help --version' -- "$cur"))
}
complete -F _fl_serve fl-serve
