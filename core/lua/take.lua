-- take.lua (redis-lua): check every booking rule and take the lowest free number, atomically.
--
-- KEYS[1] slot           hash {loaded, max_per_day, max_per_department}; absent until loaded
-- KEYS[2] schedules      set of loaded schedule ids
-- KEYS[3] free           bitmap of the schedule's free numbers (bit n set: number n free)
-- KEYS[4] blacklist      hash patient -> blacklisted until (epoch ms)
-- KEYS[5] counters       hash of active bookings: <patient>:day and <patient>:d:<department>
--                        (counts), <patient>:s:<schedule> (the lease or ledger request id
--                        of the booking held there)
-- KEYS[6] leases         zset lease id -> lease deadline (epoch ms)
-- KEYS[7] lease_records  hash lease id -> "schedule|number|patient|department|request id"
-- KEYS[8] in_flight      hash schedule id -> leases not yet settled
-- KEYS[9] lease_requests hash request id -> the lease id out for it
-- KEYS[10] closed        set of the ids of suspended schedules
-- ARGV[1] schedule id, ARGV[2] patient id, ARGV[3] department id, ARGV[4] request id,
-- ARGV[5] now (epoch ms), ARGV[6] lease deadline (epoch ms), ARGV[7] a new lease id
--
-- Returns {number taken, lease id}, or a code: 0 not loaded, -1 blacklisted, -2 already
-- booked, -3 daily limit, -4 department limit, -5 sold out, -6 no number free but some are
-- out on leases (they may come back: sold out is not certain yet), -7 the patient's booking
-- here is still on its lease (its ledger row may or may not come), -8 the schedule is
-- suspended.
-- Idempotent by request id: while its lease is out, a resent call answers that lease.
local schedule = ARGV[1]
local patient = ARGV[2]
local department = ARGV[3]
local request_id = ARGV[4]
local now = tonumber(ARGV[5])
local deadline = tonumber(ARGV[6])
local lease = ARGV[7]

local out = redis.call('HGET', KEYS[9], request_id)
if out then
    local record = redis.call('HGET', KEYS[7], out)
    if record then
        return {tonumber(string.match(record, '^[^|]*|([^|]*)|')), out}
    end
end

local rules = redis.call('HMGET', KEYS[1], 'max_per_day', 'max_per_department')
if not rules[1] or redis.call('SISMEMBER', KEYS[2], schedule) == 0 then
    return 0
end
if redis.call('SISMEMBER', KEYS[10], schedule) == 1 then
    return -8
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

local number = redis.call('BITPOS', KEYS[3], 1)
if number < 0 then
    if redis.call('HEXISTS', KEYS[8], schedule) == 1 then
        return -6
    end
    return -5
end
redis.call('SETBIT', KEYS[3], number, 0)

redis.call('HSET', KEYS[5], schedule_field, lease)
redis.call('HINCRBY', KEYS[5], day_field, 1)
redis.call('HINCRBY', KEYS[5], department_field, 1)
redis.call('HINCRBY', KEYS[8], schedule, 1)
redis.call('ZADD', KEYS[6], deadline, lease)
redis.call('HSET', KEYS[7], lease,
    schedule .. '|' .. number .. '|' .. patient .. '|' .. department .. '|' .. request_id)
redis.call('HSET', KEYS[9], request_id, lease)
return {number, lease}
