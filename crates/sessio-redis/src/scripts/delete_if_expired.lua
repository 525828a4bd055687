-- KEYS[1] a key found by SCAN; ARGV[1] now (ms). Removes it if it is a session hash whose
-- `e` (the number it starts with) is at or before now; returns how many keys went (0 or 1).
local key = KEYS[1]
if redis.call('TYPE', key).ok ~= 'hash' then
  return 0
end
local e = tonumber(string.match(redis.call('HGET', key, 'e') or '', '^%d+'))
if e and e <= tonumber(ARGV[1]) then
  redis.call('UNLINK', key)
  return 1
end
return 0
