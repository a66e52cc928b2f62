-- room_join.lua: a patient joins a schedule's waiting room, once.
--
-- KEYS[1] config    hash {opens_at, closes_at, seed, expire_at, ...} (core/waiting_room)
-- KEYS[2] queue     zset patient -> place: early arrivals in [0, 1), later ones 1 + arrival
-- KEYS[3] seen      zset patient -> when the waiting patient last asked (epoch ms, Redis clock)
-- KEYS[4] admitted  hash patient -> when the patient's admission expires (epoch ms)
-- KEYS[5] stats     hash {arrivals, admitted, abandoned, tokens, last}
-- KEYS[6] arrivals  hash patient -> the patient's arrival number (1, 2, ...)
-- ARGV[1] patient id
--
-- Returns 1 once the patient is in the room (joined now, waiting or admitted already), 0 if
-- the room does not exist or has closed. Idempotent: a patient waiting or admitted keeps
-- their place; one whose place expired joins again at the back.
local patient = ARGV[1]

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local config = redis.call('HMGET', KEYS[1], 'opens_at', 'closes_at', 'seed', 'expire_at')
local opens_at = tonumber(config[1])
local closes_at = tonumber(config[2])
if not closes_at or now >= closes_at then
    return 0
end
local admitted_until = tonumber(redis.call('HGET', KEYS[4], patient))
if (admitted_until and admitted_until > now) or redis.call('ZSCORE', KEYS[2], patient) then
    return 1
end

local arrival = redis.call('HINCRBY', KEYS[5], 'arrivals', 1)
local place
if now < opens_at then
    -- The fair shuffle: an early arrival's place is a keyed hash of the patient, uniform in
    -- [0, 1) and fixed at joining, so sorting by it is a random permutation of the early
    -- arrivals that no joining order can bias (52 bits: exact in a double).
    place = tonumber(string.sub(redis.sha1hex(config[3] .. '|' .. patient), 1, 13), 16)
        / 4503599627370496
else
    place = 1 + arrival
end
redis.call('ZADD', KEYS[2], place, patient)
redis.call('ZADD', KEYS[3], now, patient)
redis.call('HSET', KEYS[6], patient, arrival)
local expire_at = tonumber(config[4])
for i = 2, 6 do
    redis.call('PEXPIREAT', KEYS[i], expire_at)
end
return 1
