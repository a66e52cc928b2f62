-- room_advance.lua: move a waiting room on to the Redis clock's now, then say where one
-- patient stands. Any call by any server process advances the room for everyone, so the
-- admission rate is held by Redis alone, whatever number of processes serve.
--
-- KEYS[1] config    hash {opens_at, closes_at, rate, admission_ms, abandon_ms, ...}
-- KEYS[2] queue     zset patient -> place (see room_join.lua)
-- KEYS[3] seen      zset patient -> when the waiting patient last asked (epoch ms)
-- KEYS[4] admitted  hash patient -> when the patient's admission expires (epoch ms)
-- KEYS[5] stats     hash {arrivals, admitted, abandoned, tokens, last}
-- KEYS[6] arrivals  hash patient -> arrival number
-- KEYS[7] log       list of the admitted patients, in the order they were admitted
-- ARGV[1] patient id, or '' to advance only
-- ARGV[2] the most abandoned places dropped, and patients admitted, in one call
--
-- Returns {'none'} when the room does not exist or has closed, else {state, now, a, b, c}:
--   {'admitted', now, admission expiry, arrival, 0}
--   {'waiting',  now, position (1 = next), arrival, waiting in all}
--   {'absent',   now, 0, 0, waiting in all}   (never joined, or the place expired)
local patient = ARGV[1]
local step = tonumber(ARGV[2])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local config = redis.call('HMGET', KEYS[1], 'opens_at', 'closes_at', 'rate', 'admission_ms',
    'abandon_ms')
local opens_at = tonumber(config[1])
local closes_at = tonumber(config[2])
if not closes_at or now >= closes_at then
    return {'none'}
end
local rate = tonumber(config[3])
local admission_ms = tonumber(config[4])
local abandon_ms = tonumber(config[5])

-- A place nobody asked about for abandon_ms is given up: the patients behind move up.
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - abandon_ms, 'LIMIT', 0, step)
if #stale > 0 then
    redis.call('ZREM', KEYS[2], unpack(stale))
    redis.call('ZREM', KEYS[3], unpack(stale))
    redis.call('HINCRBY', KEYS[5], 'abandoned', #stale)
end

-- Admission is a token bucket on the Redis clock, empty at the opening and holding at most
-- one second of admissions, so no window of time ever admits more than rate per second.
if now >= opens_at then
    local stats = redis.call('HMGET', KEYS[5], 'tokens', 'last')
    local tokens = tonumber(stats[1]) or 0
    local last = tonumber(stats[2]) or opens_at
    tokens = math.min(math.max(rate, 1), tokens + (now - last) * rate / 1000)
    local due = math.min(math.floor(tokens), step)
    if due > 0 then
        local popped = redis.call('ZPOPMIN', KEYS[2], due)
        local admitted = #popped / 2
        for i = 1, #popped, 2 do
            redis.call('HSET', KEYS[4], popped[i], now + admission_ms)
            redis.call('ZREM', KEYS[3], popped[i])
            redis.call('RPUSH', KEYS[7], popped[i])
        end
        tokens = tokens - admitted
        redis.call('HINCRBY', KEYS[5], 'admitted', admitted)
    end
    redis.call('HSET', KEYS[5], 'tokens', tostring(tokens), 'last', now)
    redis.call('PEXPIREAT', KEYS[7], redis.call('HGET', KEYS[1], 'expire_at'))
end

local waiting = redis.call('ZCARD', KEYS[2])
if patient == '' then
    return {'absent', now, 0, 0, waiting}
end
local admitted_until = tonumber(redis.call('HGET', KEYS[4], patient))
local arrival = tonumber(redis.call('HGET', KEYS[6], patient)) or 0
if admitted_until and admitted_until > now then
    return {'admitted', now, admitted_until, arrival, 0}
end
local rank = redis.call('ZRANK', KEYS[2], patient)
if rank then
    redis.call('ZADD', KEYS[3], now, patient)
    return {'waiting', now, rank + 1, arrival, waiting}
end
return {'absent', now, 0, 0, waiting}
