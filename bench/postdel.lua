-- bench/postdel.lua: wrk(1) script for bench/store_scale.sh: each
-- connection stores the blob named by the first argument after "--"
-- (POST /v1/objects), then deletes what it stored (DELETE /v1/objects/ID),
-- and again, so that the store keeps its size. The second argument is the
-- bearer token. fl-serve closes each connection after its reply; wrk
-- reconnects.
local body, token
local pending = {}

function init(args)
	local f = assert(io.open(args[1], "rb"))
	body = f:read("*a")
	f:close()
	token = args[2]
end

function request()
	local h = { ["Authorization"] = "Bearer " .. token,
		["Accept"] = "application/json" }
	local id = table.remove(pending)
	if id then
		return wrk.format("DELETE", "/v1/objects/" .. id, h)
	end
	h["Content-Type"] = "application/x-flkit-blob"
	return wrk.format("POST", "/v1/objects", h, body)
end

function response(status, headers, b)
	local id = b and b:match('"id":"(%x+)"')
	if status == 201 and id then
		table.insert(pending, id)
	end
end
