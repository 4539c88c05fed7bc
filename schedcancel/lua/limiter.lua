--[[
schedcancel: one API user's two-level sliding-window log, shared through Redis.

Called with EVALSHA; every operation runs atomically. All times are integer
microseconds. ARGV[1] is the operation, ARGV[2] the time: empty for Redis TIME
(the one clock of every process sharing the budget), or a number from the
caller's injected clock (tests on a virtual clock; every process sharing the
keys must then share that clock). Redis TIME is read in any case: it dates an
acquire round's deadline (see the operations).

KEYS (all under one hash tag, so a Redis Cluster keeps them in one slot):
  1 the API user's log (sorted set)    2 its 429 pause (string: until)
  3 its last send (string, smooth)     4 its adaptive state (hash, below)
  5 its acceptances (sorted set, adaptive only: when the server took a request)
  6 its last background send (string: when; see "Background calls")
  then per scheduleId: its log (sorted set), its 429 pause, its last send.
A request with no scheduleId (start) has no per-id keys: the API user's level
alone counts it, and its flag says so (see the operations).
Every key carries a PEXPIRE: a log until its last entry stops counting, a pause
until it ends, a last send for one spacing, the adaptive state and the
acceptances while the policy may still need them.

A log's members are one per permit; the score is the moment the entry stops
counting, and an entry counts while its score is in the future:
  "i<acquired>:<token>"  in flight: provisional score acquired + in_flight + hold,
                         so a crashed process's entries expire on their own;
  "r:<token>"            released: score = release time + hold (response-anchored);
  "x:<token>"            released after a 429: counts the same, but was refused.
hold = window + guard.

The adaptive policy is schedcancel/_adaptive.py's, step for step (the tests
run one table of cases against both; see the op "policy"): a 429 at the API
user's level of a request granted since the last episode opened opens an
episode; when the pause ends, the episode is judged from the most acceptances
in one window over the last ACCEPTED_WINDOWS holds: fewer than the limit ->
lower it to max(1, peak, limit // 2); else not yet smooth -> smooth; else
limit - 1. A lowered limit grows back by one per hold after QUIET_WINDOWS
holds without a 429.

Background calls (priority < 0, as _stores.MemoryStore.background_at): with
reserve = min(interactive_reserve, limit - 1) > 0 they may hold only
limit - reserve places of the API user's log, and go one per
hold / (limit - reserve), so the reserve stays free for the others.

Operations (ARGV[3..]):

  acquire / peek  base total per_schedule window guard in_flight smooth slack poll adaptive
                  reserve flags deadline
      flags holds one digit per candidate, in the order the caller wants them
      served: 0 a scheduleId's request, 1 the same in the background, 2 a
      request with no scheduleId, 3 the same in the background. KEYS 7.. are
      the candidates' scheduleIds, three keys each, in that order, for the
      candidates with one (0 and 1) only; one scheduleId may appear several
      times. acquire grants
      candidate c the member "i<now>:<base>.<c>" when both levels admit it,
      skips a candidate whose scheduleId is full, and stops at the first one
      the API user's level refuses (or, for a background one, the background
      rule). peek grants nothing and looks at the first candidate only (or none).
      Returns {now, time, user_used, user_limit, user_smooth, user_wait, action,
      background_wait, r1, r2, ...}: time is Redis TIME (the caller learns
      from it how Redis's clock relates to its own); action is what judging an
      episode changed now (0 none, 1 smooth, 2 lowered); r = -1 granted, else
      the candidate's scheduleId wait (0: not held by it); candidates after the
      last r were not tried. Waits run to the next possible slot (0 when free).
      deadline (Redis TIME, empty: none) is the latest moment the caller can
      still take the round's answer: it gives up on Redis after `timeout`. A
      round run later (Redis stalled meanwhile) would take places for nobody
      (ghost entries, counted for in_flight + hold), so it changes nothing and
      returns {now, time} alone: "expired".
  release  total per_schedule window guard cap adaptive, then per permit:
           token acquired limited retry_after (-1: none) has_id (0: no scheduleId)
      KEYS 7.. are the scheduleIds of the permits that have one, three keys
      each, in the permits' order. Re-scores each
      permit's entries to now + hold ("x:<token>" for a refused one). A
      permit with limited=1 (a 429) pauses the level that was hit and, at the
      API user's level, feeds the adaptive policy. Returns {now, user_pause}.
  undo  token acquired
      Removes a permit's entries (granted, never sent); KEYS 7.. its scheduleId's
      keys, none for a permit without one. Returns the entries removed.
  forget  base
      Removes the in-flight entries an acquire round granted (its members carry
      ":<base>."), for a round whose answer never reached its caller; KEYS as
      the round's. Returns the entries removed.
  policy  total hold event now a b
      The adaptive policy alone on the state in KEYS[4] (for the tests):
      event "429" (a = stamp, b = next stamp) or "judge" (a = peak), or
      "limit". Returns {limit_at(now), smooth, open, action}.
]]

if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim unless told otherwise; TIME needs effects.
  redis.replicate_commands()
end

local QUIET_WINDOWS = 10
local ACCEPTED_WINDOWS = 3
local USER_KEYS = 6

local op = ARGV[1]
local t = redis.call('TIME')
local time = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = time
-- Key lifetimes are Redis's own (wall-clock) milliseconds. With an injected clock
-- the two clocks need not agree (virtual time runs at any pace), so lifetimes
-- get a floor of an hour: correctness never rests on expiry (every read compares
-- scores and stamps with `now`), only the cleanup of idle keys does.
local ttl_floor = 0
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
  ttl_floor = 3600000
end

-- Milliseconds a key should live for `us` microseconds of this clock (at least 1).
local function ttl(us)
  return math.max(1, ttl_floor, math.ceil(us / 1000))
end

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
    redis.call('PEXPIRE', key, ttl(tonumber(last[2]) - now))
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
      bound = math.min(score, tonumber(string.match(member, '^i(-?%d+):')) + hold)
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

-- The adaptive policy (_adaptive.AdaptiveState), on a hash:
-- limit, smooth (0/1), open (0/1), start (episode start stamp), from (recover_from).
local function load(adapt, total, hold)
  local s = redis.call('HMGET', adapt, 'limit', 'smooth', 'open', 'start', 'from')
  return {
    base = total,
    hold = hold,
    limit = tonumber(s[1]) or total,
    smooth = s[2] == '1',
    open = s[3] == '1',
    start = tonumber(s[4]),  -- nil: -inf
    from = tonumber(s[5]),   -- nil: -inf
  }
end

local function save(adapt, st)
  local fields = {'limit', st.limit, 'smooth', st.smooth and 1 or 0, 'open', st.open and 1 or 0}
  if st.start then
    fields[#fields + 1], fields[#fields + 2] = 'start', fmt(st.start)
  end
  if st.from then
    fields[#fields + 1], fields[#fields + 2] = 'from', fmt(st.from)
  end
  redis.call('HSET', adapt, unpack(fields))
  -- Kept while the limit recovers, an episode waits, and its acceptances matter.
  local holds = QUIET_WINDOWS + ACCEPTED_WINDOWS + 2 + st.base - st.limit
  redis.call('PEXPIRE', adapt, ttl(holds * st.hold))
end

local function limit_at(st, at)
  if st.limit >= st.base then
    return st.limit
  end
  local steps = math.floor((at - st.from) / st.hold) - QUIET_WINDOWS
  return math.min(st.base, st.limit + math.max(0, steps))
end

-- A 429 at the API user's level; true when it opens an episode.
local function on_429(st, at, stamp, next_stamp)
  st.limit = limit_at(st, at)
  st.from = at
  if st.open or (st.start and stamp < st.start) then
    return false
  end
  st.open = true
  st.start = next_stamp
  return true
end

-- Close the open episode (its pause is over); return the action (0, 1 smooth, 2 lowered).
local function judge(st, at, peak)
  st.open = false
  local limit = limit_at(st, at)
  st.limit = limit
  if peak < limit then
    st.limit = math.max(1, peak, math.floor(limit / 2))
    return 2
  end
  if not st.smooth then
    st.smooth = true
    return 1
  end
  st.limit = math.max(1, limit - 1)
  return 2
end

-- The most acceptances within one window (half-open), over the remembered span.
local function accepted_peak(acc, window)
  local times = redis.call('ZRANGE', acc, 0, -1, 'WITHSCORES')
  local peak, first = 0, 2
  for i = 2, #times, 2 do
    local at = tonumber(times[i])
    while tonumber(times[first]) <= at - window do
      first = first + 2
    end
    peak = math.max(peak, (i - first) / 2 + 1)
  end
  return peak
end

local function forget_accepted(acc, hold)
  redis.call('ZREMRANGEBYSCORE', acc, '-inf', now - ACCEPTED_WINDOWS * hold)
end

local function set_pause(key, wait)
  local until_ = now + wait
  local current = redis.call('GET', key)
  if current and tonumber(current) >= until_ then
    return tonumber(current) - now
  end
  redis.call('SET', key, fmt(until_), 'PX', ttl(wait))
  return wait
end

if op == 'acquire' or op == 'peek' then
  if ARGV[15] ~= '' and time > tonumber(ARGV[15]) then
    return {now, time}  -- expired: its caller gave up; grant nothing to nobody
  end
  local base = ARGV[3]
  local total, per_schedule = tonumber(ARGV[4]), tonumber(ARGV[5])
  local window, guard, in_flight = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local smooth, slack, poll = ARGV[9] == '1', tonumber(ARGV[10]), tonumber(ARGV[11])
  local adaptive = ARGV[12] == '1'
  local reserve, flags = tonumber(ARGV[13]), ARGV[14]
  local hold = window + guard

  local limit, user_smooth, action = total, smooth, 0
  if adaptive then
    local st = load(KEYS[4], total, hold)
    local paused = redis.call('GET', KEYS[2])
    if st.open and (not paused or tonumber(paused) <= now) then
      forget_accepted(KEYS[5], hold)
      action = judge(st, now, accepted_peak(KEYS[5], window))
      save(KEYS[4], st)
    end
    limit, user_smooth = limit_at(st, now), smooth or st.smooth
  end
  local user_spacing = window / limit * (1 + slack)
  local id_spacing = window / per_schedule * (1 + slack)
  local user_used = live(KEYS[1])
  local user_wait, background_wait = 0, 0
  reserve = math.min(reserve, limit - 1)
  local share = limit - reserve
  local results = {}
  local expires = now + in_flight + hold
  local prefix = 'i' .. fmt(now) .. ':' .. base .. '.'
  local cursor = USER_KEYS
  -- Candidates in the caller's order; a full scheduleId is skipped, a full API
  -- user ends the round (nothing after it could go either).
  for c = 1, #flags do
    local flag = tonumber(string.sub(flags, c, c))
    local log, pause, last
    if flag < 2 then
      log, pause, last = KEYS[cursor + 1], KEYS[cursor + 2], KEYS[cursor + 3]
      cursor = cursor + 3
    end
    local background = reserve > 0 and flag % 2 == 1
    user_wait = level_wait(
      KEYS[1], user_used, limit, KEYS[2], KEYS[3], user_smooth, user_spacing, hold, poll)
    if background and user_wait == 0 and op ~= 'peek' then
      -- At most `share` places, one per hold / share (the reserve stays free).
      background_wait = level_wait(KEYS[1], user_used, share, KEYS[2], KEYS[6], true,
        hold / share, hold, poll)
      if background_wait > 0 then
        break
      end
    end
    local id_wait = 0
    if log then
      id_wait = level_wait(log, live(log), per_schedule, pause, last, smooth, id_spacing, hold, poll)
    end
    if op == 'peek' or user_wait > 0 or id_wait > 0 then
      results[#results + 1] = id_wait
      if op == 'peek' or user_wait > 0 then
        break
      end
    else
      local member = prefix .. c
      redis.call('ZADD', KEYS[1], expires, member)
      if log then
        redis.call('ZADD', log, expires, member)
        expire_log(log)
      end
      user_used = user_used + 1
      if background then
        redis.call('SET', KEYS[6], fmt(now), 'PX', ttl(hold / share))
      end
      if user_smooth then
        redis.call('SET', KEYS[3], fmt(now), 'PX', ttl(user_spacing))
      end
      if smooth and last then
        redis.call('SET', last, fmt(now), 'PX', ttl(id_spacing))
      end
      results[#results + 1] = -1
    end
  end
  if #flags == 0 or results[#results] == -1 then
    -- Every candidate went: say when the next could, so the caller need not ask.
    user_wait = level_wait(
      KEYS[1], user_used, limit, KEYS[2], KEYS[3], user_smooth, user_spacing, hold, poll)
    if reserve > 0 and string.find(flags, '[13]') then
      background_wait = level_wait(KEYS[1], user_used, share, KEYS[2], KEYS[6], true,
        hold / share, hold, poll)
    end
  end
  expire_log(KEYS[1])
  local reply = {now, time, user_used, limit, user_smooth and 1 or 0, user_wait, action,
    background_wait}
  for _, r in ipairs(results) do
    reply[#reply + 1] = r
  end
  return reply
end

if op == 'release' then
  local total, per_schedule = tonumber(ARGV[3]), tonumber(ARGV[4])
  local window, guard, cap = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local adaptive = ARGV[8] == '1'
  local hold = window + guard
  local expires = now + hold
  local user_pause = 0
  local st = nil
  local cursor = USER_KEYS
  -- Per permit, the level a 429 was blamed on: 0 none, 1 the API user, 2 the scheduleId.
  local levels = {}
  for c = 1, (#ARGV - 8) / 5 do
    levels[c] = 0
    local at = 8 + (c - 1) * 5
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
      if log and live(log) >= per_schedule then
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
  end
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
end

if op == 'undo' then
  local member = 'i' .. ARGV[4] .. ':' .. ARGV[3]
  local removed = redis.call('ZREM', KEYS[1], member)
  if #KEYS > USER_KEYS then
    removed = removed + redis.call('ZREM', KEYS[USER_KEYS + 1], member)
  end
  return removed
end

if op == 'forget' then
  -- A round whose answer never came (its caller gave up on Redis): take back what it
  -- granted. KEYS are the round's own (logs at 1 and 7, 10, ...), ARGV[3] its base.
  local mark = ':' .. ARGV[3] .. '.'
  local removed = 0
  for k = 1, #KEYS do
    if k == 1 or (k > USER_KEYS and (k - USER_KEYS) % 3 == 1) then
      for _, member in ipairs(redis.call('ZRANGE', KEYS[k], 0, -1)) do
        if string.byte(member, 1) == 105 and string.find(member, mark, 1, true) then
          removed = removed + redis.call('ZREM', KEYS[k], member)
        end
      end
    end
  end
  return removed
end

if op == 'policy' then
  local st = load(KEYS[4], tonumber(ARGV[3]), tonumber(ARGV[4]))
  local event, at = ARGV[5], tonumber(ARGV[6])
  local action = 0
  if event == '429' then
    action = on_429(st, at, tonumber(ARGV[7]), tonumber(ARGV[8])) and 1 or 0
  elseif event == 'judge' then
    action = judge(st, at, tonumber(ARGV[7]))
  end
  save(KEYS[4], st)
  return {limit_at(st, at), st.smooth and 1 or 0, st.open and 1 or 0, action}
end

return redis.error_reply('schedcancel: unknown operation ' .. tostring(op))
