-- KEYS[1] the session; ARGV[1] now (the new record's last_active, ms); ARGV[2] expires_at
-- (ms); ARGV[3] created_at (ms); ARGV[4..] field/value pairs (`i`/`a` and the data).
--
-- Returns 0 when a live session holds the key (one whose `e` is after now, or which has no
-- readable `e`); otherwise replaces whatever was there and returns 1.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  local e = tonumber(redis.call('HGET', key, 'e'))
  if not e or e > tonumber(ARGV[1]) then
    return 0
  end
  redis.call('DEL', key)
end
set_meta_and(key, 4)
redis.call('PEXPIREAT', key, ARGV[2])
