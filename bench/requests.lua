-- bench/requests.lua: wrk(1) script for bench/requests.sh: POST the blob
-- named by the first argument after "--" (or GET when there is none), with
-- the bearer token of the second.
local body, token

function init(args)
	if args[1] and args[1] ~= "" then
		local f = assert(io.open(args[1], "rb"))
		body = f:read("*a")
		f:close()
	end
	token = args[2]
end

function request()
	local h = { ["Authorization"] = "Bearer " .. token }
	if body then
		h["Content-Type"] = "application/x-flkit-blob"
		return wrk.format("POST", nil, h, body)
	end
	return wrk.format("GET", nil, h)
end
