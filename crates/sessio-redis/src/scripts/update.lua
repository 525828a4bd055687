-- KEYS[1] the session; ARGV[1] now (the new meta's last_active, ms); ARGV[2] the value of
-- `e` (expires_at, ms, and the own expiry if any); ARGV[3] created_at (ms); ARGV[4..]
-- field/value pairs to set once every data field is gone.
--
-- Returns 0, writing nothing, unless the session exists and has not expired at now.
-- Used for an update that clears every key (it lists them with HKEYS in the same atomic
-- step); other updates and touches are a MULTI transaction.
local key = KEYS[1]
local e = expires_of(redis.call('HGET', key, 'e'))
if not e or e <= tonumber(ARGV[1]) then
  return 0
end
local doomed = {}
for _, field in ipairs(redis.call('HKEYS', key)) do
  if string.sub(field, 1, 2) == 'd:' then
    doomed[#doomed + 1] = field
  end
end
chunked('HDEL', key, doomed, 1, #doomed)
set_meta_and(key, 4)
