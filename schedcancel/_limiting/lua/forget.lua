--[[
schedcancel: take back what an acquire round granted when its answer never
reached its caller (the caller gave up on Redis).

KEYS: log pause last adapt accepted last_background
KEYS per candidate with a scheduleId: log pause last
ARGV: now base

The KEYS are the round's own; its in-flight members carry ":<base>.".
Returns the entries removed.
]]

local mark = ':' .. ARGV[2] .. '.'
local removed = 0
for k = 1, #KEYS do
  -- The logs: the API user's, and each candidate's first key.
  if k == 1 or (k > USER_KEYS and (k - USER_KEYS) % 3 == 1) then
    for _, member in ipairs(redis.call('ZRANGE', KEYS[k], 0, -1)) do
      if string.byte(member, 1) == 105 and string.find(member, mark, 1, true) then
        removed = removed + redis.call('ZREM', KEYS[k], member)
      end
    end
  end
end
return removed
