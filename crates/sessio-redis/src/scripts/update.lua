-- KEYS[1] the session; ARGV[1] now (the new meta's last_active, ms); ARGV[2] expires_at
-- (ms); ARGV[3] created_at (ms); ARGV[4] flags: 1 removes every data field first, 2 says
-- the session has an expiry of its own (its `i`/`a` pairs follow); ARGV[5] how many fields
-- to remove (n); ARGV[6..5+n] those fields; ARGV[6+n..] field/value pairs to set.
--
-- Returns 0, writing nothing, unless the session exists and has not expired at now.
-- Used for an update that clears every key (it lists them with HKEYS); other updates and
-- touches are a MULTI transaction. `i`/`a` are removed only when the session has no
-- expiry of its own and the hash still holds one of them.
local key = KEYS[1]
local stored = redis.call('HMGET', key, 'e', 'i', 'a')
local e = tonumber(stored[1])
if not e or e <= tonumber(ARGV[1]) then
  return 0
end
local flags = tonumber(ARGV[4])
if flags % 2 == 1 then
  local doomed = {}
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, 2) == 'd:' then
      doomed[#doomed + 1] = field
    end
  end
  chunked('HDEL', key, doomed, 1, #doomed)
end
if flags < 2 and (stored[2] or stored[3]) then
  redis.call('HDEL', key, 'i', 'a')
end
local removed = tonumber(ARGV[5])
chunked('HDEL', key, ARGV, 6, 5 + removed)
set_meta_and(key, 6 + removed)
redis.call('PEXPIREAT', key, ARGV[2])
