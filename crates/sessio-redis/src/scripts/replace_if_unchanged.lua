-- KEYS[1] a session (connect-redis layout); ARGV[1] the SHA-1 (hex) of the value the
-- caller computed from; then either ARGV[2] the new value and ARGV[3] its TTL in seconds,
-- or nothing more to delete the session.
--
-- Returns 1 when done; 0, doing nothing, when the key does not exist; and when its value
-- changed since, does nothing and returns `{current value, its PTTL}`, so that the caller
-- can compute again from it without another read.
local key = KEYS[1]
local current = redis.call('GET', key)
if not current then
  return 0
end
if redis.sha1hex(current) ~= ARGV[1] then
  return {current, redis.call('PTTL', key)}
end
if #ARGV >= 3 then
  redis.call('SET', key, ARGV[2], 'EX', ARGV[3])
else
  redis.call('DEL', key)
end
return 1
