-- The functions every write script starts with (prepended to create.lua and update.lua).
-- HSET/HDEL with many arguments, 1000 at a time: Lua's `unpack` has a stack limit. Pairs
-- stay whole because 1000 is even.
local function chunked(command, key, list, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 999, last)
    redis.call(command, key, unpack(list, i, j))
    i = j + 1
  end
end
-- The expires_at (ms) at the head of a value of `e` (`{expires_at}` or
-- `{expires_at}/{idle}/{absolute}`); nil when there is none.
local function expires_of(e)
  return tonumber(string.match(e or '', '^%d+'))
end
-- ARGV[1] last_active, ARGV[2] the value of `e`, ARGV[3] created_at (every write script
-- starts so): writes them to l, e and c with the field/value pairs ARGV[first..], in one
-- HSET when the pairs fit Lua's stack, and expires the key at expires_at.
local function set_meta_and(key, first)
  if #ARGV - first < 998 then
    redis.call('HSET', key, 'c', ARGV[3], 'l', ARGV[1], 'e', ARGV[2], unpack(ARGV, first, #ARGV))
  else
    redis.call('HSET', key, 'c', ARGV[3], 'l', ARGV[1], 'e', ARGV[2])
    chunked('HSET', key, ARGV, first, #ARGV)
  end
  redis.call('PEXPIREAT', key, string.match(ARGV[2], '^%d+'))
end
