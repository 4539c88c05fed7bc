--[[
The adaptive policy alone, for tests/test_adaptive.py (never shipped: the
package's scripts do not contain it). Assembled after schedcancel/_limiting/lua/helpers.lua.

KEYS: adapt
ARGV: now total hold event at a b

event "429" (a = stamp, b = next stamp) or "judge" (a = peak), or "limit".
Returns {limit_at(at), smooth, open, action}.
]]

local st = load(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
local event, at = ARGV[4], tonumber(ARGV[5])
local action = 0
if event == '429' then
  action = on_429(st, at, tonumber(ARGV[6]), tonumber(ARGV[7])) and 1 or 0
elseif event == 'judge' then
  action = judge(st, at, tonumber(ARGV[6]))
end
save(KEYS[1], st)
return {limit_at(st, at), st.smooth and 1 or 0, st.open and 1 or 0, action}
