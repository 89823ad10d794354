-- switchyard's stream usage filter (extproc.envoy_config fills {{header}}).
-- Placed after the routing filter: it sees the header switchyard set when it
-- asked a backend for a stream's usage the client did not ask for. The
-- observing filter (closer to the router) sees the usage event first; this
-- filter removes it from what the client receives.
function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get("{{header}}") ~= nil then
    headers:remove("{{header}}")
    handle:streamInfo():dynamicMetadata():set("switchyard", "strip_usage", "1")
  end
end

local function next_break(data, start)
  local lf = string.find(data, "\n\n", start, true)
  local crlf = string.find(data, "\r\n\r\n", start, true)
  if crlf ~= nil and (lf == nil or crlf < lf) then
    return crlf, crlf + 3
  end
  if lf ~= nil then
    return lf, lf + 1
  end
  return nil, nil
end

local function is_usage_event(event)
  return string.find(event, '"usage"', 1, true) ~= nil
    and string.find(event, '"choices"%s*:%s*%[%s*%]') ~= nil
end

function envoy_on_response(handle)
  local metadata = handle:streamInfo():dynamicMetadata():get("switchyard")
  if metadata == nil or metadata["strip_usage"] == nil then
    return
  end
  -- An error answer (JSON) passes as it is.
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if string.find(content_type, "text/event-stream", 1, true) ~= 1 then
    return
  end
  -- The body gets shorter: a length the backend announced would no longer hold.
  headers:remove("content-length")
  -- SSE events end with a blank line; an event split across chunks waits for its end
  -- (an unterminated last event is dropped, as an SSE client would drop it).
  local carry = ""
  for chunk in handle:bodyChunks() do
    local data = carry .. chunk:getBytes(0, chunk:length())
    local kept = {}
    local start = 1
    while true do
      local _, stop = next_break(data, start)
      if stop == nil then
        break
      end
      local event = string.sub(data, start, stop)
      if not is_usage_event(event) then
        kept[#kept + 1] = event
      end
      start = stop + 1
    end
    carry = string.sub(data, start)
    chunk:setBytes(table.concat(kept))
  end
end
