-- KEYS[1] the session; ARGV[1] now (the new record's last_active, ms); ARGV[2] the value
-- of `e` (expires_at, ms, and the own expiry if any); ARGV[3] created_at (ms); ARGV[4..]
-- field/value pairs of the data.
--
-- Returns 0 when a live session holds the key (one whose `e` is after now, or which has no
-- readable `e`); otherwise replaces whatever was there and returns 1.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  local e = expires_of(redis.call('HGET', key, 'e'))
  if not e or e > tonumber(ARGV[1]) then
    return 0
  end
  redis.call('DEL', key)
end
set_meta_and(key, 4)
