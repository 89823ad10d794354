
-- switchyard's per-attempt rewrite on a cluster that tries several backends in turn
-- (a canary retried on stable, a route's fallbacks: extproc.envoy_config). Envoy's retry
-- moves each attempt to the next backend; attempt 1 is the backend switchyard already
-- rewrote the request for, every later one gets its own model name, path, Host and key.
local FIRST = {{first}}
local NEXT = {
{{next}}
}

function envoy_on_request(handle)
  local headers = handle:headers()
  local attempt = tonumber(headers:get("x-envoy-attempt-count") or "") or 1
  headers:remove("x-envoy-attempt-count")
  local metadata = handle:streamInfo():dynamicMetadata()
  local to = NEXT[attempt]
  if to == nil then
    metadata:set("switchyard", "answered_by", FIRST.name)
    return
  end
  metadata:set("switchyard", "answered_by", to.name)
  set_path(headers, FIRST.path_prefix, FIRST.query, to.path_prefix, to.query)
  headers:replace(":authority", to.host)
  if FIRST.header ~= "" then
    headers:remove(FIRST.header)
  end
  if to.header ~= "" then
    headers:replace(to.header, to.key_prefix .. (os.getenv(to.key_env) or ""))
  end
  -- Last: reading the body suspends the script, and header objects taken before it
  -- cannot be used after.
  set_model(handle, to.model)
end

-- Which backend answered (the route's x-switchyard-backend keeps it).
function envoy_on_response(handle)
  local metadata = handle:streamInfo():dynamicMetadata():get("switchyard")
  if metadata ~= nil and metadata["answered_by"] ~= nil then
    handle:headers():replace("{{backend_header}}", metadata["answered_by"])
  end
end
