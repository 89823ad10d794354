-- A rollout state's write, only if the version it was decided on is still current;
-- then the change is announced to every replica.
-- KEYS[1]: the state hash. ARGV: expected version, channel, message, then field/value pairs.
local current = redis.call('HGET', KEYS[1], 'version') or ''
if current ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
