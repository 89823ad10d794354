-- switchyard's request guard (extproc.envoy_config fills the {{...}} values).
-- Answers an announced body over the limit with switchyard's JSON 413 before Envoy
-- buffers it, drops client-sent switchyard headers and clears the route cache (so a
-- spoofed request is routed as if it had none, also when switchyard is down), drops
-- the x-envoy-* headers a client sent, and hands switchyard the client's address for its session fingerprint.
local internal = {{{internal}}}
local chat_paths = {{{chat_paths}}}
local max_body = {{max_body}}

local function is_chat(path)
  for _, prefix in ipairs(chat_paths) do
    if string.sub(path, 1, #prefix) == prefix then
      return true
    end
  end
  return false
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local length = tonumber(headers:get("content-length") or "")
  if length ~= nil and length > max_body and is_chat(headers:get(":path") or "") then
    handle:respond(
      {[":status"] = "413", ["content-type"] = "application/json",
       ["{{backend_header}}"] = "switchyard"},
      string.format('{"error": {"type": "request_too_large", "code": "request_too_large", '
        .. '"message": "request body is %d bytes; this deployment accepts at most %d"}}',
        length, max_body))
    return
  end
  local found = false
  for _, name in ipairs(internal) do
    if headers:get(name) ~= nil then
      headers:remove(name)
      found = true
    end
  end
  -- Envoy's own request headers are Envoy's to set: none a client sends goes further.
  local envoys = {}
  for name, _ in pairs(headers) do
    if string.sub(name, 1, 8) == "x-envoy-" then
      envoys[#envoys + 1] = name
    end
  end
  for _, name in ipairs(envoys) do
    headers:remove(name)
  end
  if found then
    handle:clearRouteCache()
  end
  -- The client's address as Envoy established it (peer, or x-forwarded-for after the
  -- trusted hops), without the port, for the session fingerprint; replaces any sent.
  local address = handle:streamInfo():downstreamRemoteAddress()
  headers:replace("{{client_header}}",
    string.match(address, "^%[(.+)%]:%d+$") or string.match(address, "^(.+):%d+$") or address)
end
