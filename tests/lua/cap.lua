--[[
The adaptive policy's in-flight cap alone (rule 4), for tests/test_in_flight_cap.py
(never shipped: the package's scripts do not contain it). Assembled after
schedcancel/_limiting/lua/helpers.lua, which takes `now` from ARGV[1].

KEYS: accepted
ARGV: now limit window hold times

times: the acceptances (µs), comma-separated. Returns the cap, -1 for none.
]]

for value in string.gmatch(ARGV[5], '[^,]+') do
  redis.call('ZADD', KEYS[1], tonumber(value), value)
end
local cap = in_flight_cap(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('DEL', KEYS[1])
if cap == math.huge then
  return -1
end
return cap
