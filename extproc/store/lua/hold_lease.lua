-- Takes the analysis lease, or extends it when this replica already holds it.
-- KEYS[1]: the lease key. ARGV: this replica's id, the lease in milliseconds.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
