--[[
The background policy alone, for tests/test_background.py (never shipped: the
package's scripts do not contain this operation). Assembled after
schedcancel/lua/helpers.lua.

KEYS: state
ARGV: now event at limit reserve hold window in_flight expiries

event "at" (when may a background call go at `at`; expiries comma-separated,
ascending) or "sent" (a background call took its place at `at`; in_flight 1:
the log was empty before). Returns {result, last, burst}: result the moment
(-1: only a release can tell) for "at", 0 for "sent"; last and burst the
state after it (-1: never).
]]

local event, at = ARGV[2], tonumber(ARGV[3])
local limit, reserve = tonumber(ARGV[4]), tonumber(ARGV[5])
local hold, window, in_flight = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local expiries = {}
for value in string.gmatch(ARGV[9], '[^,]+') do
  expiries[#expiries + 1] = tonumber(value)
end
now = at
local st = bg_load(KEYS[1])
local result = 0
if event == 'at' then
  result = background_at(st, limit, reserve, hold, window, in_flight, expiries)
  if result == math.huge then
    result = -1
  end
else
  background_sent(st, at, in_flight == 1)
  bg_save(KEYS[1], st, window)
end
return {result, st.last or -1, st.burst or -1}
