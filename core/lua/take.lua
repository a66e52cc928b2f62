-- take.lua (redis-lua): check every booking rule and take the lowest free number, atomically.
--
-- KEYS[1] slot           hash {loaded, max_per_day, max_per_department}; absent until loaded
-- KEYS[2] schedules      set of loaded schedule ids
-- KEYS[3] free           zset of the schedule's free numbers (score = number)
-- KEYS[4] blacklist      hash patient -> blacklisted until (epoch ms)
-- KEYS[5] counters       hash of active bookings: <patient>:day and <patient>:d:<department>
--                        (counts), <patient>:s:<schedule> (the request id that booked it,
--                        "1" when loaded from the ledger)
-- KEYS[6] leases         zset request id -> lease deadline (epoch ms)
-- KEYS[7] lease_records  hash request id -> "schedule|number|patient|department"
-- KEYS[8] in_flight      hash schedule id -> leases not yet settled
-- ARGV[1] schedule id, ARGV[2] patient id, ARGV[3] department id, ARGV[4] request id,
-- ARGV[5] now (epoch ms), ARGV[6] lease deadline (epoch ms)
--
-- Returns the number taken (>= 1), or a code: 0 not loaded, -1 blacklisted, -2 already
-- booked, -3 daily limit, -4 department limit, -5 sold out, -6 no number free but some are
-- out on leases (they may come back: sold out is not certain yet), -7 the patient's booking
-- here is still on its lease (its ledger row may or may not come).
-- Idempotent by request id: a resent call answers the number its first call took.
local schedule = ARGV[1]
local patient = ARGV[2]
local department = ARGV[3]
local request_id = ARGV[4]
local now = tonumber(ARGV[5])
local deadline = tonumber(ARGV[6])

local record = redis.call('HGET', KEYS[7], request_id)
if record then
    return tonumber(string.match(record, '^[^|]*|([^|]*)|'))
end

local rules = redis.call('HMGET', KEYS[1], 'max_per_day', 'max_per_department')
if not rules[1] or redis.call('SISMEMBER', KEYS[2], schedule) == 0 then
    return 0
end

local until_ms = redis.call('HGET', KEYS[4], patient)
if until_ms and tonumber(until_ms) > now then
    return -1
end

local schedule_field = patient .. ':s:' .. schedule
local day_field = patient .. ':day'
local department_field = patient .. ':d:' .. department
local held = redis.call('HMGET', KEYS[5], schedule_field, day_field, department_field)
if held[1] then
    if redis.call('HEXISTS', KEYS[7], held[1]) == 1 then
        return -7
    end
    return -2
end
if tonumber(held[2] or 0) >= tonumber(rules[1]) then
    return -3
end
if tonumber(held[3] or 0) >= tonumber(rules[2]) then
    return -4
end

local popped = redis.call('ZPOPMIN', KEYS[3])
if not popped[1] then
    if redis.call('HEXISTS', KEYS[8], schedule) == 1 then
        return -6
    end
    return -5
end
local number = popped[1]

redis.call('HSET', KEYS[5], schedule_field, request_id)
redis.call('HINCRBY', KEYS[5], day_field, 1)
redis.call('HINCRBY', KEYS[5], department_field, 1)
redis.call('HINCRBY', KEYS[8], schedule, 1)
redis.call('ZADD', KEYS[6], deadline, request_id)
redis.call('HSET', KEYS[7], request_id,
    schedule .. '|' .. number .. '|' .. patient .. '|' .. department)
return tonumber(number)
