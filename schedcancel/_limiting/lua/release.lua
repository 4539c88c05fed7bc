--[[
schedcancel: release permits whose responses (or failures) were observed now.

KEYS: log pause last adapt accepted last_background
KEYS per permit with a scheduleId: log pause last
ARGV: now total per_schedule window guard cap adaptive higher probe
ARGV per permit: token acquired limited retry_after has_id user_limit remaining reset id_limit blamed

retry_after is -1 when the server sent none; has_id is 0 for a permit with no
scheduleId (it has no per-permit KEYS). user_limit, remaining, reset (µs)
and id_limit are the answer's rate-limit headers digested (server_state.digest;
-1: not stated), blamed the level they say a 429 hit (0 unknown, 1 the API
user, 2 the scheduleId), and retry_after already the pause they ask for; each
feeds the server's word (helpers.lua). Re-scores each permit's entries to
now + hold ("x:<token>" for a refused one). A permit with limited = 1 (a 429)
pauses the level that was hit and, at the API user's level, feeds the
adaptive policy. Returns {now, user_pause, level1, level2, ...}: per permit,
the level a 429 was blamed on (0 none, 1 the API user, 2 the scheduleId).
]]

local total, per_schedule = tonumber(ARGV[2]), tonumber(ARGV[3])
local window, guard, cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local adaptive, higher, probe = ARGV[7] == '1', ARGV[8] == '1', ARGV[9] == '1'
local HEAD, PER_PERMIT = 9, 10
local sv = server_load(KEYS[4], probe)
local hold = window + guard
local expires = now + hold
local user_pause = 0
local st = nil
local cursor = USER_KEYS
local levels = {}
for c = 1, (#ARGV - HEAD) / PER_PERMIT do
  levels[c] = 0
  local at = HEAD + (c - 1) * PER_PERMIT
  local token, acquired = ARGV[at + 1], ARGV[at + 2]
  local limited, retry_after = ARGV[at + 3] == '1', tonumber(ARGV[at + 4])
  local logs = {KEYS[1]}
  local log, pause
  if ARGV[at + 5] == '1' then
    log, pause = KEYS[cursor + 1], KEYS[cursor + 2]
    cursor = cursor + 3
    logs[2] = log
  end
  -- A refused request stays counted (the server may have counted it) as 'x:'.
  local member = (limited and 'x:' or 'r:') .. token
  for _, key in ipairs(logs) do
    redis.call('ZREM', key, 'i' .. acquired .. ':' .. token)
    redis.call('ZADD', key, expires, member)
  end
  if log then
    expire_log(log)
  end
  local id_limit = server_id_limit(sv, per_schedule, higher)
  local blamed = tonumber(ARGV[at + 10])
  if not limited then
    if adaptive then
      redis.call('ZADD', KEYS[5], now, token)
    end
  else
    -- The level that was hit: the scheduleId when its log is full, else the API user.
    local wait = hold
    if retry_after >= 0 then
      wait = math.min(retry_after, cap)
    end
    if blamed == 0 and log and live(log) >= id_limit then
      blamed = 2
    end
    if blamed == 2 and log then
      set_pause(pause, wait)
      levels[c] = 2
    else
      levels[c] = 1
      user_pause = math.max(user_pause, set_pause(KEYS[2], wait))
      if adaptive then
        st = st or load(KEYS[4], total, hold)
        on_429(st, now, tonumber(acquired), now + 1)
      end
    end
  end
  live(KEYS[1])
  local remaining = tonumber(ARGV[at + 7])
  local counted = 0
  if remaining >= 0 and not limited then
    counted = answered(KEYS[1])  -- only a reading counts them (a walk of the log)
  end
  local place = tonumber(string.match(token, '%.(%d+)$')) or 0  -- in its round
  server_observe(sv, now, counted, tonumber(acquired), place, limited, hold,
    tonumber(ARGV[at + 6]), remaining, tonumber(ARGV[at + 8]), tonumber(ARGV[at + 9]))
end
server_save(KEYS[4], sv, hold, probe)
if st then
  save(KEYS[4], st)
end
if adaptive then
  forget_accepted(KEYS[5], hold)
  redis.call('PEXPIRE', KEYS[5], ttl(ACCEPTED_WINDOWS * hold) + 1)
end
expire_log(KEYS[1])
local reply = {now, user_pause}
for _, level in ipairs(levels) do
  reply[#reply + 1] = level
end
return reply
