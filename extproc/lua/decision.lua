-- switchyard's decision keeper (extproc.envoy_config fills the {{...}} values).
-- Placed after the routing filter: keeps what switchyard decided for this request
-- (route, cohort, label, cache state and fill token, shadow path) in the stream's
-- dynamic metadata, where the route's response headers and a shadow copy read it. The
-- router then removes these headers from the request: no backend ever sees them.
local kept = {{{kept}}}

function envoy_on_request(handle)
  local headers = handle:headers()
  local metadata = handle:streamInfo():dynamicMetadata()
  for _, name in ipairs(kept) do
    local value = headers:get(name)
    if value ~= nil then
      metadata:set("{{namespace}}", name, value)
    end
  end
end
