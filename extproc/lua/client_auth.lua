-- switchyard's client key check (extproc.envoy_config fills the {{...}} values).
-- Placed after the request guard, before any routing: a request needs a client key
-- (Authorization: Bearer <key> or x-api-key: <key>) whose SHA-256 is in the key table
-- of the route it first matches (this code with the table, per route, compiled once when
-- Envoy loads the route table: a changed keys file applies to the next request, on every
-- connection, and a lookup costs the same for ten clients or thousands). Otherwise it
-- is answered 401 (by the routes this filter sends it to), also while switchyard is down. The client's name goes to
-- switchyard in {{client_header}}; the key itself is never logged.
-- SHA-256 hex of each client key, to the client's name; nil in the listener's copy of
-- this code, which only routes that forward nowhere run.
local clients = {{clients}}

local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, ror, tobit, tohex = bit.rshift, bit.ror, bit.tobit, bit.tohex

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function sha256_hex(message)
  local length = #message
  local bits = length * 8
  message = message .. "\128" .. string.rep("\0", (55 - length) % 64)
    .. string.char(0, 0, 0, 0, band(rshift(bits, 24), 255), band(rshift(bits, 16), 255),
      band(rshift(bits, 8), 255), band(bits, 255))
  local h0, h1, h2, h3 = 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a
  local h4, h5, h6, h7 = 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  local w = {}
  for start = 1, #message, 64 do
    for i = 0, 15 do
      local a, b, c, d = string.byte(message, start + i * 4, start + i * 4 + 3)
      w[i] = bor(bit.lshift(a, 24), bit.lshift(b, 16), bit.lshift(c, 8), d)
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = h0, h1, h2, h3, h4, h5, h6, h7
    for i = 0, 63 do
      local s1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(h + s1 + ch + K[i + 1] + w[i])
      local s0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      h, g, f, e = g, f, e, tobit(d + t1)
      d, c, b, a = c, b, a, tobit(t1 + s0 + maj)
    end
    h0, h1, h2, h3 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d)
    h4, h5, h6, h7 = tobit(h4 + e), tobit(h5 + f), tobit(h6 + g), tobit(h7 + h)
  end
  return tohex(h0) .. tohex(h1) .. tohex(h2) .. tohex(h3)
    .. tohex(h4) .. tohex(h5) .. tohex(h6) .. tohex(h7)
end

-- The route table answers the 401 (routes matched on this header), so that the observing
-- filter sees it and switchyard counts it by reason.
local function refuse(handle, headers, reason)
  headers:replace("{{reason_header}}", reason)
  handle:clearRouteCache()
end

function envoy_on_request(handle)
  if clients == nil then
    return  -- a route that forwards nowhere (the gateway's 404)
  end
  local headers = handle:headers()
  local key = headers:get("x-api-key")
  if key == nil then
    local authorization = headers:get("authorization") or ""
    key = string.match(authorization, "^[Bb]earer%s+(%S+)%s*$")
  end
  if key == nil or key == "" then
    refuse(handle, headers, "missing")
    return
  end
  local name = clients[sha256_hex(key)]
  if name == nil then
    refuse(handle, headers, "wrong")
    return
  end
  headers:replace("{{client_header}}", name)
end
