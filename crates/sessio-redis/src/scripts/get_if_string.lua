-- KEYS[1] a key found by SCAN. Returns its value if it is a string, nil otherwise (so
-- that keys of other types under the prefix are skipped, not errors).
local key = KEYS[1]
if redis.call('TYPE', key).ok ~= 'string' then
  return false
end
return redis.call('GET', key)
