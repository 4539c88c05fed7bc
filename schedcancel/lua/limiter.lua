--[[
schedcancel: one API user's two-level sliding-window log, shared through Redis.

Called with EVALSHA; every operation runs atomically, with Redis TIME as the one
clock. All times are integer microseconds of Redis TIME.

KEYS (all under one hash tag, so a Redis Cluster keeps them in one slot):
  1 the API user's log (sorted set)    2 its 429 pause (string: until)
  3 its last send (string, smooth)     4 its adaptive state (hash: limit, at,
                                         smooth, changed)
  then per scheduleId: its log (sorted set), its 429 pause, its last send.
Every key carries a PEXPIRE: a log until its last entry stops counting, a pause
until it ends, a last send for one spacing, the adaptive state until the limit
has recovered plus ten holds.

A log's members are one per permit; the score is the moment the entry stops
counting, and an entry counts while its score is in the future:
  "i<acquired>:<token>"  in flight: provisional score acquired + in_flight + hold,
                         so a crashed process's entries expire on their own;
  "r:<token>"            released: score = release time + hold (response-anchored);
  "x:<token>"            released after a 429: counts the same, but was refused.
hold = window + guard.

ARGV[1] is the operation:

  acquire / peek  base total per_schedule window guard in_flight smooth slack poll adaptive
      KEYS 5.. are candidates, three keys (log, pause, last send) each, in the
      order the caller wants them served; one scheduleId may appear several
      times. acquire grants candidate c the member "i<now>:<base>.<c>" when
      both levels admit it, skips a candidate whose scheduleId is full, and
      stops at the first one the API user's level refuses. peek grants
      nothing and looks at the first candidate only (or none).
      Returns {now, user_used, user_limit, user_smooth, user_wait, r1, r2, ...}:
      r = -1 granted, else the candidate's scheduleId wait (0: not held by it);
      candidates after the last r were not tried. Waits run to the next
      possible slot (0 when free).
  release  total per_schedule window guard cap adaptive smooth, then per permit:
           token acquired limited retry_after (-1: none)
      KEYS 5.. are the permits' scheduleIds, three keys each. Re-scores each
      permit's entries to now + hold ("x:<token>" for a refused one). A
      permit with limited=1 (a 429) pauses the level that was hit and, at the
      API user's level, feeds the adaptive state. Returns {now, user_pause,
      adaptive_change (0 none, 1 now smooth, 2 limit lowered), limit}.
  undo  token acquired
      Removes a permit's entries (granted, never sent). Returns the entries removed.
]]

if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim unless told otherwise; TIME needs effects.
  redis.replicate_commands()
end

local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function fmt(n)
  -- tostring() prints 1.8e+15; the members need every digit.
  return string.format('%.0f', n)
end

-- Drop the entries that stopped counting; return how many still count.
local function live(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key)
end

-- Expire the log when its last entry stops counting, so idle keys vanish.
local function expire_log(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)))
  end
end

-- The earliest moment `need` entries may have stopped counting. A released
-- entry stops at its score. An entry in flight stops no earlier than
-- acquired + hold (its response can come no earlier than its send); once that
-- moment has passed, only its release can tell, so look again after `poll`.
local function next_slot(key, need, hold, poll)
  local items = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local bounds = {}
  for i = 1, #items, 2 do
    local member, score = items[i], tonumber(items[i + 1])
    local bound = score
    if string.byte(member, 1) == 105 then -- 'i'
      bound = math.min(score, tonumber(string.match(member, '^i(%d+):')) + hold)
      if bound <= now then
        bound = math.min(score, now + poll)
      end
    end
    bounds[#bounds + 1] = bound
  end
  table.sort(bounds)
  return bounds[need]
end

-- Microseconds until one more request may start at this level (0: now).
local function level_wait(log, used, limit, pause, last, smooth, spacing, hold, poll)
  local wait = 0
  local paused = redis.call('GET', pause)
  if paused then
    wait = math.max(wait, tonumber(paused) - now)
  end
  if used >= limit then
    wait = math.max(wait, next_slot(log, used - limit + 1, hold, poll) - now)
  end
  if smooth then
    local sent = redis.call('GET', last)
    if sent then
      wait = math.max(wait, tonumber(sent) + spacing - now)
    end
  end
  return math.max(0, math.ceil(wait))
end

-- The API user's adaptive state (shared by every process): the effective limit,
-- lowered after 429s and raised again by one per `hold` since the last 429, and
-- whether the level paces sends (smooth).
local function effective(adapt, total, smooth, adaptive, hold)
  if not adaptive then
    return total, smooth
  end
  local state = redis.call('HMGET', adapt, 'limit', 'at', 'smooth')
  if not state[1] then
    return total, smooth
  end
  local limit = tonumber(state[1]) + math.floor((now - tonumber(state[2])) / hold)
  return math.min(total, limit), smooth or state[3] == '1'
end

-- Learn from a 429 at the API user's level (our log never lets `total` others
-- in besides this request, so foreign load or a counter-type server caused it).
-- As the in-process limiter: first pace sends (smooth); on a 429 while pacing,
-- lower the limit to what the server accepted in the window (released entries
-- that were not refused). 429s of requests granted before the last change
-- belong to that episode and change nothing more. Every 429 restarts the
-- recovery clock. Returns 0 (no change), 1 (now smooth) or 2 (lowered), and the limit.
local function adapt_to_429(adapt, log, acquired, total, smooth, hold)
  local limit, paced = effective(adapt, total, smooth, true, hold)
  local changed = tonumber(redis.call('HGET', adapt, 'changed') or '0')
  local action = 0
  if acquired >= changed then
    changed = now
    if not paced then
      paced, action = true, 1
    else
      local accepted = 0
      for _, member in ipairs(redis.call('ZRANGEBYSCORE', log, '(' .. fmt(now), '+inf')) do
        if string.byte(member, 1) == 114 then -- 'r': answered and not refused
          accepted = accepted + 1
        end
      end
      limit, action = math.max(1, math.min(limit - 1, accepted)), 2
    end
  end
  redis.call('HSET', adapt, 'limit', limit, 'at', fmt(now), 'smooth', paced and 1 or 0,
    'changed', fmt(changed))
  -- Remembered while the limit recovers, and ten holds more (idle keys still vanish).
  redis.call('PEXPIRE', adapt, math.ceil((total - limit + 10) * hold / 1000))
  return action, limit
end

local function set_pause(key, wait)
  local until_ = now + wait
  local current = redis.call('GET', key)
  if current and tonumber(current) >= until_ then
    return tonumber(current) - now
  end
  redis.call('SET', key, fmt(until_), 'PX', math.max(1, math.ceil(wait / 1000)))
  return wait
end

if op == 'acquire' or op == 'peek' then
  local base = ARGV[2]
  local total, per_schedule = tonumber(ARGV[3]), tonumber(ARGV[4])
  local window, guard, in_flight = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local smooth, slack, poll = ARGV[8] == '1', tonumber(ARGV[9]), tonumber(ARGV[10])
  local adaptive = ARGV[11] == '1'
  local hold = window + guard

  local limit, user_smooth = effective(KEYS[4], total, smooth, adaptive, hold)
  local user_spacing = window / limit * (1 + slack)
  local id_spacing = window / per_schedule * (1 + slack)
  local user_used = live(KEYS[1])
  local user_wait = 0
  local results = {}
  local expires = now + in_flight + hold
  local prefix = 'i' .. fmt(now) .. ':' .. base .. '.'
  -- Candidates in the caller's order; a full scheduleId is skipped, a full API
  -- user ends the round (nothing after it could go either).
  for c = 1, (#KEYS - 4) / 3 do
    local log, pause, last = KEYS[3 * c + 2], KEYS[3 * c + 3], KEYS[3 * c + 4]
    user_wait = level_wait(
      KEYS[1], user_used, limit, KEYS[2], KEYS[3], user_smooth, user_spacing, hold, poll)
    local id_used = live(log)
    local id_wait = level_wait(log, id_used, per_schedule, pause, last, smooth, id_spacing, hold, poll)
    if op == 'peek' or user_wait > 0 or id_wait > 0 then
      results[#results + 1] = id_wait
      if op == 'peek' or user_wait > 0 then
        break
      end
    else
      local member = prefix .. c
      redis.call('ZADD', KEYS[1], expires, member)
      redis.call('ZADD', log, expires, member)
      expire_log(log)
      user_used = user_used + 1
      if user_smooth then
        redis.call('SET', KEYS[3], fmt(now), 'PX', math.max(1, math.ceil(user_spacing / 1000)))
      end
      if smooth then
        redis.call('SET', last, fmt(now), 'PX', math.max(1, math.ceil(id_spacing / 1000)))
      end
      results[#results + 1] = -1
    end
  end
  if #KEYS == 4 then
    user_wait = level_wait(
      KEYS[1], user_used, limit, KEYS[2], KEYS[3], user_smooth, user_spacing, hold, poll)
  end
  expire_log(KEYS[1])
  local reply = {now, user_used, limit, user_smooth and 1 or 0, user_wait}
  for _, r in ipairs(results) do
    reply[#reply + 1] = r
  end
  return reply
end

if op == 'release' then
  local total, per_schedule = tonumber(ARGV[2]), tonumber(ARGV[3])
  local window, guard, cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local adaptive, smooth = ARGV[7] == '1', ARGV[8] == '1'
  local hold = window + guard
  local expires = now + hold
  local user_pause, action, limit = 0, 0, 0
  for c = 1, (#KEYS - 4) / 3 do
    local at = 8 + (c - 1) * 4
    local token, acquired = ARGV[at + 1], ARGV[at + 2]
    local limited, retry_after = ARGV[at + 3] == '1', tonumber(ARGV[at + 4])
    local log, pause = KEYS[3 * c + 2], KEYS[3 * c + 3]
    -- A refused request stays counted (the server may have counted it) as 'x:'.
    local member = (limited and 'x:' or 'r:') .. token
    for _, key in ipairs({KEYS[1], log}) do
      redis.call('ZREM', key, 'i' .. acquired .. ':' .. token)
      redis.call('ZADD', key, expires, member)
    end
    expire_log(log)
    if limited then
      -- The level that was hit: the scheduleId when its log is full, else the API user.
      local wait = hold
      if retry_after >= 0 then
        wait = math.min(retry_after, cap)
      end
      if live(log) >= per_schedule then
        set_pause(pause, wait)
      else
        user_pause = math.max(user_pause, set_pause(KEYS[2], wait))
        if adaptive then
          local changed, new_limit = adapt_to_429(KEYS[4], KEYS[1], tonumber(acquired), total,
            smooth, hold)
          if changed > 0 then
            action, limit = changed, new_limit
          end
        end
      end
    end
  end
  expire_log(KEYS[1])
  return {now, user_pause, action, limit}
end

if op == 'undo' then
  local member = 'i' .. ARGV[3] .. ':' .. ARGV[2]
  return redis.call('ZREM', KEYS[1], member) + redis.call('ZREM', KEYS[5], member)
end

return redis.error_reply('schedcancel: unknown operation ' .. tostring(op))
