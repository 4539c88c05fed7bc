--[[
schedcancel: give back a permit that was granted and never sent.

KEYS: log pause last adapt accepted last_background
KEYS per permit with a scheduleId: log pause last
ARGV: now token acquired

Removes the permit's entries; the per-permit KEYS are its scheduleId's (none
for a permit without one). Returns the entries removed.
]]

local member = 'i' .. ARGV[3] .. ':' .. ARGV[2]
local removed = redis.call('ZREM', KEYS[1], member)
if #KEYS > USER_KEYS then
  removed = removed + redis.call('ZREM', KEYS[USER_KEYS + 1], member)
end
return removed
