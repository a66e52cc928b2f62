-- give_back.lua: undo the take of a lease whose ledger row will never be written (its claim
-- says so): return its number (unless the ledger holds it for someone else) and the
-- patient's counts (unless the ledger holds the patient's booking there). Only while the
-- lease record exists, so the writer and any number of reconcilers can race to give one
-- lease back and one of them does.
--
-- KEYS[1] free           bitmap of the schedule's free numbers
-- KEYS[2] leases         zset lease id -> lease deadline
-- KEYS[3] lease_records  hash lease id -> "schedule|number|patient|department|request id"
-- KEYS[4] in_flight      hash schedule id -> leases not yet settled
-- KEYS[5] lease_requests hash request id -> the lease id out for it
-- KEYS[6] counters       (optional) the slot's patient counts, to undo the take's increments
-- ARGV[1] lease id, ARGV[2] "1" to give the number back, "0" to keep it out of Redis
--
-- Returns 1 if the lease was undone, 0 if it was already settled (a lease left without its
-- record is dropped: there is nothing to give back).
local lease = ARGV[1]
local number_back = ARGV[2] == '1'

local record = redis.call('HGET', KEYS[3], lease)
if not record then
    redis.call('ZREM', KEYS[2], lease)
    return 0
end
local schedule, number, patient, department, request_id =
    string.match(record, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')

if number_back then
    redis.call('SETBIT', KEYS[1], number, 1)
end

local schedule_field = patient .. ':s:' .. schedule
if KEYS[6] and redis.call('HGET', KEYS[6], schedule_field) == lease then
    redis.call('HDEL', KEYS[6], schedule_field)
    for _, field in ipairs({patient .. ':day', patient .. ':d:' .. department}) do
        if redis.call('HINCRBY', KEYS[6], field, -1) <= 0 then
            redis.call('HDEL', KEYS[6], field)
        end
    end
end

if redis.call('HINCRBY', KEYS[4], schedule, -1) <= 0 then
    redis.call('HDEL', KEYS[4], schedule)
end
if redis.call('HGET', KEYS[5], request_id) == lease then
    redis.call('HDEL', KEYS[5], request_id)
end
redis.call('HDEL', KEYS[3], lease)
redis.call('ZREM', KEYS[2], lease)
return 1
