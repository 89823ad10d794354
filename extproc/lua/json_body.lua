-- JSON body helpers shared by switchyard's Lua filters that rewrite a request for a backend
-- (extproc.envoy_config prepends this file to their scripts).

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

-- Sets the body's top-level "model" (a JSON string's content); "" leaves the body alone.
local function set_model(handle, model)
  if model == "" then
    return
  end
  local body = handle:body()
  if body == nil then
    return
  end
  local text = body:getBytes(0, body:length())
  local first, last = model_value(text)
  if first ~= nil then
    local rewritten = string.sub(text, 1, first) .. model .. string.sub(text, last)
    body:setBytes(rewritten)
    handle:headers():replace("content-length", tostring(#rewritten))
  end
end

-- The path for another backend: without `old_prefix` and `old_query` (what switchyard set
-- for the first), with `prefix` and `query` (extproc.request.adapt's rule).
local function set_path(headers, old_prefix, old_query, prefix, query)
  local path = headers:get(":path") or "/"
  if old_prefix ~= "" and string.sub(path, 1, #old_prefix) == old_prefix then
    path = string.sub(path, #old_prefix + 1)
  end
  if old_query ~= "" then
    for _, mark in ipairs({"?", "&"}) do
      local tail = mark .. old_query
      if string.sub(path, -#tail) == tail then
        path = string.sub(path, 1, #path - #tail)
        break
      end
    end
  end
  path = prefix .. path
  if query ~= "" then
    if string.find(path, "?", 1, true) then
      path = path .. "&" .. query
    else
      path = path .. "?" .. query
    end
  end
  headers:replace(":path", path)
end
