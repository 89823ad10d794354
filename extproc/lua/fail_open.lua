-- switchyard's fail-open rewrite for one backend (extproc.envoy_config fills the {{...}}
-- values per fail-open route). Runs only on a request switchyard did not route (down or
-- late): the body still names the client's model, which this backend may not serve. Sets
-- the top-level "model" to the backend's, and its path prefix and query, as switchyard
-- would have (extproc.request.adapt).
local MODEL = "{{model}}"
local PATH_PREFIX = "{{path_prefix}}"
local QUERY = "{{query}}"

-- The end of the JSON string that starts at i (its closing quote).
local function string_end(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if k == nil then
      return nil
    end
    if string.byte(s, k) == 92 then
      j = k + 2
    else
      return k
    end
  end
end

-- Where the string value of the object's own "model" key is (not a nested one's).
local function model_value(s)
  local depth, i = 0, 1
  while true do
    local k = string.find(s, '[{}%[%]"]', i)
    if k == nil then
      return nil
    end
    local c = string.byte(s, k)
    if c == 34 then
      local stop = string_end(s, k)
      if stop == nil then
        return nil
      end
      if depth == 1 and string.sub(s, k, stop) == '"model"' then
        local _, colon = string.find(s, '^%s*:%s*"', stop + 1)
        if colon ~= nil then
          local value_end = string_end(s, colon)
          if value_end ~= nil then
            return colon, value_end
          end
        end
      end
      i = stop + 1
    else
      if c == 123 or c == 91 then
        depth = depth + 1
      else
        depth = depth - 1
      end
      i = k + 1
    end
  end
end

function envoy_on_request(handle)
  if MODEL ~= "" then
    local body = handle:body()
    if body ~= nil then
      local text = body:getBytes(0, body:length())
      local first, last = model_value(text)
      if first ~= nil then
        local rewritten = string.sub(text, 1, first) .. MODEL .. string.sub(text, last)
        body:setBytes(rewritten)
        handle:headers():replace("content-length", tostring(#rewritten))
      end
    end
  end
  if PATH_PREFIX ~= "" or QUERY ~= "" then
    local headers = handle:headers()
    local path = PATH_PREFIX .. (headers:get(":path") or "/")
    if QUERY ~= "" then
      if string.find(path, "?", 1, true) then
        path = path .. "&" .. QUERY
      else
        path = path .. "?" .. QUERY
      end
    end
    headers:replace(":path", path)
  end
end
