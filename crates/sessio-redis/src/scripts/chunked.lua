-- HSET/HDEL with many arguments, 1000 at a time: Lua's `unpack` has a stack limit. Pairs
-- stay whole because 1000 is even. Also the meta write every write script ends with.
local function chunked(command, key, list, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 999, last)
    redis.call(command, key, unpack(list, i, j))
    i = j + 1
  end
end
-- ARGV[1] last_active, ARGV[2] expires_at, ARGV[3] created_at (every write script starts so):
-- writes them to l, e and c with the field/value pairs ARGV[first..], in one HSET when the
-- pairs fit Lua's stack.
local function set_meta_and(key, first)
  if #ARGV - first < 998 then
    redis.call('HSET', key, 'c', ARGV[3], 'l', ARGV[1], 'e', ARGV[2], unpack(ARGV, first, #ARGV))
  else
    redis.call('HSET', key, 'c', ARGV[3], 'l', ARGV[1], 'e', ARGV[2])
    chunked('HSET', key, ARGV, first, #ARGV)
  end
end
