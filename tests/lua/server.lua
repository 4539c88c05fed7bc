--[[
The server's word alone, for tests/test_server_state.py (never shipped: the
package's scripts do not contain it). Assembled after schedcancel/lua/helpers.lua.

KEYS: adapt
ARGV: now probe higher hold base base_id event at answered adaptive limited user_limit remaining reset id_limit sent

event "observe" (an answer's digest, -1: not stated) or "limit". Returns
{user_limit(at), id_limit, speaks} after the event.
]]

local probe, higher = ARGV[2] == '1', ARGV[3] == '1'
local hold, base, base_id = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local event, at, answered_now = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local sv = server_load(KEYS[1], probe)
if event == 'observe' then
  server_observe(sv, at, answered_now, tonumber(ARGV[16]), 0, ARGV[11] == '1', hold,
    tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]))
  server_save(KEYS[1], sv, hold, probe)
end
return {server_limit(sv, at, base, tonumber(ARGV[10]), answered_now, higher),
  server_id_limit(sv, base_id, higher), sv.speaks and 1 or 0}
