--[[
schedcancel: one acquire round (or a peek) for candidates in the order the
caller wants them served.

KEYS: log pause last adapt accepted last_background
KEYS per candidate with a scheduleId: log pause last
ARGV: now peek base total per_schedule window guard in_flight smooth slack poll adaptive reserve flags deadline probe higher

flags holds one digit per candidate: 0 a scheduleId's request, 1 the same in
the background, 2 a request with no scheduleId, 3 the same in the
background. The per-candidate KEYS are those of the candidates with a
scheduleId (0 and 1) only, in order; one scheduleId may appear several times.
An acquire grants candidate c the member "i<now>:<base>.<c>" when both levels
admit it, skips a candidate whose scheduleId is full, and stops at the first
one the API user's level refuses (or, for a background one, the background
rule). A peek (peek = 1) grants nothing and looks at the first candidate only
(or none).

Background calls (priority < 0) follow background.BackgroundState (the
helpers' background_at): the interactive envelope, then a pace of one per
hold / (limit - reserve) except within one window of a burst.

Returns {now, time, user_used, user_limit, user_smooth, user_wait, action,
background_wait, adapted, r1, r2, ...}: time is Redis TIME (the caller learns from it
how Redis's clock relates to its own); action is what judging an episode
changed now (0 none, 1 smooth, 2 lowered); adapted is the adaptive policy's
limit (user_limit is the effective one, the server's word applied); r = -1 granted, else the
candidate's scheduleId wait (0: not held by it); candidates after the last r
were not tried. Waits run to the next possible slot (0 when free); user_wait
-1: only a release frees one (starting cold or refilling: the in-flight cap).
deadline (Redis TIME, empty: none) is the latest moment the caller can still
take the round's answer: it gives up on Redis after `timeout`. A round run
later (Redis stalled meanwhile) would take places for nobody (ghost entries,
counted for in_flight + hold), so it changes nothing and returns {now, time}
alone: "expired".
]]

local _, peek, base, total, per_schedule, window, guard, in_flight, smooth, slack, poll,
  adaptive, reserve, flags, deadline, probe, higher = unpack(ARGV)
if deadline ~= '' and time > tonumber(deadline) then
  return {now, time}  -- expired: its caller gave up; grant nothing to nobody
end
peek = peek == '1'
total, per_schedule = tonumber(total), tonumber(per_schedule)
window, guard, in_flight = tonumber(window), tonumber(guard), tonumber(in_flight)
smooth, slack, poll = smooth == '1', tonumber(slack), tonumber(poll)
adaptive, reserve = adaptive == '1', tonumber(reserve)
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
local adapted = limit
-- The server's word bounds both levels (probe and higher: RateLimits' flags).
local sv = server_load(KEYS[4], probe == '1')
live(KEYS[1])
local user_answered = 0
if sv.speaks or sv.seen then
  user_answered = answered(KEYS[1])  -- only a reading counts them (a walk of the log)
end
limit = server_limit(sv, now, total, limit, user_answered, higher == '1')
per_schedule = server_id_limit(sv, per_schedule, higher == '1')
local user_spacing = window / limit * (1 + slack)
local id_spacing = window / per_schedule * (1 + slack)
local user_used = live(KEYS[1])
local user_wait, background_wait = 0, 0
-- Starting cold or refilling, at most `cap` of the API user's requests in flight.
local cap, flying = math.huge, 0
if adaptive and not user_smooth and not peek then
  cap = in_flight_cap(KEYS[5], limit, window, hold)
  if cap < math.huge then
    flying = young_in_flight(KEYS[1], math.max(guard, poll))
  end
end
-- The API user's wait, or -1: capped, until a release (the caller polls for other processes').
-- No longer than until the server's word may change (its reset: one goes first).
local server_change = server_next_change(sv, now)
local function user_level_wait()
  local wait = level_wait(
    KEYS[1], user_used, limit, KEYS[2], KEYS[3], user_smooth, user_spacing, hold, poll)
  if wait == 0 and flying >= cap then
    return -1
  end
  if wait > 0 and server_change < math.huge then
    wait = math.min(wait, math.ceil(server_change - now))
  end
  return wait
end
local bg, bg_in_flight, bg_expiries
if reserve > 0 and string.find(flags, '[13]') then
  bg = bg_load(KEYS[6])
  bg_in_flight, bg_expiries = log_entries(KEYS[1])
end
local bg_ttl = math.max(window, hold / math.max(1, limit - math.min(reserve, limit - 1)))
-- Microseconds until one more background call may go (a poll when only a release can tell).
local function bg_wait()
  local at = background_at(bg, limit, reserve, hold, window, bg_in_flight, bg_expiries)
  if at == math.huge then
    return poll
  end
  return math.max(0, math.ceil(at - now))
end
local results, granted = {}, 0
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
  user_wait = user_level_wait()
  if background and user_wait == 0 and not peek then
    background_wait = bg_wait()
    if background_wait > 0 then
      break
    end
  end
  local id_wait = 0
  if log then
    id_wait = level_wait(log, live(log), per_schedule, pause, last, smooth, id_spacing, hold, poll)
  end
  if peek or user_wait ~= 0 or id_wait > 0 then
    results[#results + 1] = id_wait
    if peek or user_wait ~= 0 then
      break
    end
  else
    local member = prefix .. c
    redis.call('ZADD', KEYS[1], expires, member)
    if log then
      redis.call('ZADD', log, expires, member)
      expire_log(log)
    end
    if background then
      background_sent(bg, now, user_used == 0)
      bg_save(KEYS[6], bg, bg_ttl)
    end
    if bg then
      bg_in_flight = bg_in_flight + 1
    end
    user_used, granted = user_used + 1, granted + 1
    flying = flying + 1
    if user_smooth then
      redis.call('SET', KEYS[3], fmt(now), 'PX', ttl(user_spacing))
    end
    if smooth and last then
      redis.call('SET', last, fmt(now), 'PX', ttl(id_spacing))
    end
    results[#results + 1] = -1
  end
end
-- A policy that may turn smooth (adaptive) notes the last send too, once a round (its
-- grants share `now`): the first paced send is spaced from the burst's last, as in process.
if adaptive and not user_smooth and granted > 0 then
  redis.call('SET', KEYS[3], fmt(now), 'PX', ttl(user_spacing))
end
if #flags == 0 or results[#results] == -1 then
  -- Every candidate went: say when the next could, so the caller need not ask.
  user_wait = user_level_wait()
  if bg then
    background_wait = bg_wait()
  end
end
expire_log(KEYS[1])
local reply = {now, time, user_used, limit, user_smooth and 1 or 0, user_wait, action,
  background_wait, adapted}
for _, r in ipairs(results) do
  reply[#reply + 1] = r
end
return reply
