-- admit.lua (redis-queue): admit one booking by taking the schedule's lowest free number
-- token; the booking rules are checked afterwards, in the ledger transaction.
--
-- KEYS[1] slot           hash; absent until the slot is loaded
-- KEYS[2] schedules      set of loaded schedule ids
-- KEYS[3] free           bitmap of the schedule's free numbers (bit n set: number n free)
-- KEYS[4] leases         zset lease id -> lease deadline (epoch ms)
-- KEYS[5] lease_records  hash lease id -> "schedule|number|patient|department|request id"
-- KEYS[6] in_flight      hash schedule id -> leases not yet settled
-- KEYS[7] lease_requests hash request id -> the lease id out for it
-- KEYS[8] closed         set of the ids of suspended schedules
-- ARGV[1] schedule id, ARGV[2] patient id, ARGV[3] department id, ARGV[4] request id,
-- ARGV[5] lease deadline (epoch ms), ARGV[6] a new lease id
--
-- Returns {number admitted, lease id}, or a code of take.lua: 0 not loaded, -5 sold out, -6
-- no number free but some are out on leases, -8 the schedule is suspended.
-- Idempotent by request id: while its lease is out, a resent call answers that lease.
local schedule = ARGV[1]
local patient = ARGV[2]
local department = ARGV[3]
local request_id = ARGV[4]
local deadline = tonumber(ARGV[5])
local lease = ARGV[6]

local out = redis.call('HGET', KEYS[7], request_id)
if out then
    local record = redis.call('HGET', KEYS[5], out)
    if record then
        return {tonumber(string.match(record, '^[^|]*|([^|]*)|')), out}
    end
end

if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('SISMEMBER', KEYS[2], schedule) == 0 then
    return 0
end
if redis.call('SISMEMBER', KEYS[8], schedule) == 1 then
    return -8
end

local number = redis.call('BITPOS', KEYS[3], 1)
if number < 0 then
    if redis.call('HEXISTS', KEYS[6], schedule) == 1 then
        return -6
    end
    return -5
end

redis.call('SETBIT', KEYS[3], number, 0)
redis.call('HINCRBY', KEYS[6], schedule, 1)
redis.call('ZADD', KEYS[4], deadline, lease)
redis.call('HSET', KEYS[5], lease,
    schedule .. '|' .. number .. '|' .. patient .. '|' .. department .. '|' .. request_id)
redis.call('HSET', KEYS[7], request_id, lease)
return {number, lease}
