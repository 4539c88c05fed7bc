--[[
schedcancel: what every operation's script shares. It is prepended to each
operation's file (acquire.lua, release.lua, undo.lua, forget.lua) when the
script text is assembled (schedcancel/_limiting/redis_scripts.py): a Redis script
cannot `require`. Each operation's file lists its KEYS and ARGV by name, in
order, in its header; redis_scripts.py defines the same order in Python, and
tests/test_redis_scripts.py checks that the two agree.

Called with EVALSHA; every operation runs atomically. All times are integer
microseconds. ARGV[1] of every operation is `now`: empty for Redis TIME (the
one clock of every process sharing the budget), or a number from the caller's
injected clock (tests on a virtual clock; every process sharing the keys must
then share that clock). Redis TIME is read in any case: it dates an acquire
round's deadline.

KEYS (all under one hash tag, so a Redis Cluster keeps them in one slot):
  1 the API user's log (sorted set)    2 its 429 pause (string: until)
  3 its last send (string, smooth)     4 its adaptive state (hash, below)
  5 its acceptances (sorted set, adaptive only: when the server took a request)
  6 its background state (string: "<last send>:<burst start>"; see below)
  then per scheduleId: its log (sorted set), its 429 pause, its last send.
A request with no scheduleId (start) has no per-id keys: the API user's level
alone counts it.
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

The adaptive policy is schedcancel/_limiting/adaptive.py's, step for step (the tests
run one table of cases against both, through tests/lua/policy.lua): a 429 at
the API user's level of a request granted since the last episode opened opens
an episode; when the pause ends, the episode is judged from the most
acceptances in one window over the last ACCEPTED_WINDOWS holds: fewer than
the limit -> lower it to max(1, peak, limit // 2); else not yet smooth ->
smooth; else limit - 1. A lowered limit grows back by one per hold after
QUIET_WINDOWS holds without a 429. While starting cold or refilling, at most
a sixth of the limit is in flight (in_flight_cap).
]]

if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim unless told otherwise; TIME needs effects.
  redis.replicate_commands()
end

local QUIET_WINDOWS = 10
local ACCEPTED_WINDOWS = 3
local USER_KEYS = 6

local t = redis.call('TIME')
local time = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = time
-- Key lifetimes are Redis's own (wall-clock) milliseconds. With an injected clock
-- the two clocks need not agree (virtual time runs at any pace), so lifetimes
-- get a floor of an hour: correctness never rests on expiry (every read compares
-- scores and stamps with `now`), only the cleanup of idle keys does.
local ttl_floor = 0
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
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

-- The adaptive policy's rule 4 (adaptive.in_flight_cap): while no acceptance of
-- ours is remembered (a cold start) or a grant would reuse a place whose
-- acceptance stopped counting within the last window (refilling), at most a
-- sixth of the limit is in flight (counted by young_in_flight); math.huge: no cap.
local CAP_SHARE = 6

local function in_flight_cap(acc, limit, window, hold)
  local warm = redis.call('ZCOUNT', acc, '(' .. fmt(now - ACCEPTED_WINDOWS * hold), '+inf') > 0
  if warm and redis.call('ZCOUNT', acc, '(' .. fmt(now - window - hold), fmt(now - hold)) == 0 then
    return math.huge
  end
  return math.ceil(limit / CAP_SHARE)
end

-- The requests in flight ('i') the cap counts: sent within `lapse` (adaptive.cap_lapse).
local function young_in_flight(log, lapse)
  local n = 0
  for _, member in ipairs(redis.call('ZRANGE', log, 0, -1)) do
    if string.byte(member, 1) == 105 then -- 'i'
      if tonumber(string.match(member, '^i(-?%d+):')) + lapse > now then
        n = n + 1
      end
    end
  end
  return n
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

-- The background policy (background.BackgroundState), step for step: a
-- background call (priority < 0) may take a place when the interactive
-- envelope holds (the places free now plus those freed within k intervals
-- number at least reserve + k, for k = 0 .. depth, once it has its place;
-- in-flight entries do not free within it) and either an interval has passed
-- since the last background call or it is within one window of a burst (a
-- background call that found the API user's log empty). Its state is one
-- string "<last>:<burst>" (µs; either part empty: never).
local DEPTH_PER_RESERVE = 4

local function bg_load(key)
  local value = redis.call('GET', key)
  local st = {}
  if value then
    local last, burst = string.match(value, '^(-?%d*):(-?%d*)$')
    st.last, st.burst = tonumber(last), tonumber(burst)
  end
  return st
end

local function bg_save(key, st, ttl_us)
  local value = (st.last and fmt(st.last) or '') .. ':' .. (st.burst and fmt(st.burst) or '')
  redis.call('SET', key, value, 'PX', ttl(ttl_us))
end

-- expiries: the answered entries' expiries still counting, ascending.
local function envelope_at(limit, reserve, hold, in_flight, expiries)
  local look = math.min(DEPTH_PER_RESERVE * reserve, math.floor((limit - reserve) / 2))
  local step = hold / (limit - reserve)
  local spare = limit - in_flight - 1 - reserve
  if spare < look then
    return math.huge
  end
  local at = now
  for k = 0, look do
    local index = #expiries - spare + k
    if index >= 1 then
      at = math.max(at, expiries[index] - k * step)
    end
  end
  return at
end

local function background_at(st, limit, reserve, hold, window, in_flight, expiries)
  reserve = math.min(reserve, limit - 1)
  if reserve <= 0 or (in_flight == 0 and #expiries == 0) then
    return now
  end
  local at = envelope_at(limit, reserve, hold, in_flight, expiries)
  if (not st.burst or at >= st.burst + window) and st.last then
    at = math.max(at, st.last + hold / (limit - reserve))
  end
  return at
end

local function background_sent(st, at, empty)
  st.last = at
  if empty then
    st.burst = at
  end
end

-- The API user's log as the background policy reads it: in flight, answered expiries.
local function log_entries(key)
  local items = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local in_flight, expiries = 0, {}
  for i = 1, #items, 2 do
    if string.byte(items[i], 1) == 105 then -- 'i'
      in_flight = in_flight + 1
    else
      expiries[#expiries + 1] = tonumber(items[i + 1])
    end
  end
  return in_flight, expiries
end

-- The server's word (server_state.ServerState), kept in the adaptive state's
-- hash (KEYS[4]) as sv_* fields: speaks (0/1), stated, stated_id, seen, left,
-- released (our answers taken in; left is released + Remaining at the reading),
-- read_from and read_c (the send order of the request whose answer set left: its
-- acquire time and its place in that round), seen_until, fresh_until (absent:
-- none, 0 for the counts, or -inf for the times). A fresh hash
-- speaks as `probe` says. The rule is server_state's, step for step (the tests
-- run one table of cases against both, through tests/lua/server.lua).
local SERVER_FIELDS = {'stated', 'stated_id', 'seen', 'left', 'released', 'read_from', 'read_c',
  'seen_until', 'fresh_until'}

local function server_load(adapt, probe)
  local names = {'sv_speaks'}
  for i, name in ipairs(SERVER_FIELDS) do
    names[i + 1] = 'sv_' .. name
  end
  local s = redis.call('HMGET', adapt, unpack(names))
  local sv = {speaks = probe}
  if s[1] then
    sv.speaks = s[1] == '1'
  end
  for i, name in ipairs(SERVER_FIELDS) do
    sv[name] = tonumber(s[i + 1])
  end
  sv.left, sv.released, sv.read_c = sv.left or 0, sv.released or 0, sv.read_c or 0
  return sv
end

-- Saved only when it says more than a fresh hash would (absent: speaks as `probe`).
local function server_save(adapt, sv, hold, probe)
  local fields = {'sv_speaks', sv.speaks and 1 or 0}
  if sv.speaks == probe and not (sv.stated or sv.stated_id or sv.seen) then
    if redis.call('HEXISTS', adapt, 'sv_speaks') == 0 then
      return
    end
  end
  for _, name in ipairs(SERVER_FIELDS) do
    if sv[name] then
      fields[#fields + 1], fields[#fields + 2] = 'sv_' .. name, fmt(sv[name])
    end
  end
  redis.call('HSET', adapt, unpack(fields))
  local keep = ttl((QUIET_WINDOWS + ACCEPTED_WINDOWS + 2) * hold)
  if redis.call('PTTL', adapt) < keep then
    redis.call('PEXPIRE', adapt, keep)
  end
end

-- One answer's digest (-1: not stated); `answered` counts this answer's entry, every
-- answer is counted in `released`; sent, sent_c: the answered request's send order.
local function server_observe(sv, at, answered, sent, sent_c, limited, hold, user_limit,
    remaining, reset, id_limit)
  sv.released = sv.released + 1
  if not limited then
    sv.speaks = remaining >= 0
  end
  if user_limit >= 0 then
    sv.stated = user_limit
  end
  if id_limit >= 0 then
    sv.stated_id = id_limit
  end
  if limited or remaining < 0 then
    return
  end
  local seen, left = answered + remaining, sv.released + remaining
  if sv.seen and sv.fresh_until and at < sv.fresh_until and at < sv.seen_until then
    seen = math.min(seen, sv.seen)  -- the same reading period: the lowest holds
    local from = sv.read_from or -math.huge
    if sent < from or (sent == from and sent_c <= sv.read_c) then
      -- an answer to an older request: out of order
      left, sent, sent_c = math.min(left, sv.left), from, sv.read_c
    end
  end
  sv.seen, sv.left, sv.read_from, sv.read_c = seen, left, sent, sent_c
  sv.seen_until = at + 2 * hold
  sv.fresh_until = at + math.max(reset, 0)
end

-- The API user's effective limit (ServerState.user_limit).
local function server_limit(sv, at, base, adaptive_limit, answered, higher)
  local cap = base
  if sv.stated and (sv.stated < base or higher) then
    cap = sv.stated
  end
  local limit = cap
  if adaptive_limit < base then
    limit = math.min(adaptive_limit, cap)
  end
  if sv.speaks and (not sv.fresh_until or at >= sv.fresh_until) then
    limit = math.min(limit, answered + 1)  -- stale: one goes first, its answer tells
  elseif sv.seen and at < sv.seen_until then
    limit = math.min(limit, sv.seen)
    if sv.fresh_until and at < sv.fresh_until then  -- every answer since the reading spent it
      limit = math.min(limit, sv.left - sv.released + answered)
    end
  end
  return math.max(1, limit)
end

-- When server_limit() may grow without an answer (ServerState.next_change): the
-- reading's reset (stale then: one goes first), or when `seen` lapses.
local function server_next_change(sv, at)
  local change = math.huge
  if sv.speaks and sv.fresh_until and at < sv.fresh_until then
    change = sv.fresh_until
  end
  if sv.seen and at < sv.seen_until then
    change = math.min(change, sv.seen_until)
  end
  return change
end

local function server_id_limit(sv, base, higher)
  if sv.stated_id and (sv.stated_id < base or higher) then
    return math.max(1, sv.stated_id)
  end
  return base
end

-- Released entries that still count (call live() first): not in flight ('i').
local function answered(log)
  local n = 0
  for _, member in ipairs(redis.call('ZRANGE', log, 0, -1)) do
    if string.byte(member, 1) ~= 105 then
      n = n + 1
    end
  end
  return n
end

-- The operation's own code follows.
