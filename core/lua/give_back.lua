-- give_back.lua: undo the take of a lease whose ledger row will never be written: return its
-- number (unless the ledger holds it for someone else) and the patient's counts (unless the
-- ledger holds the patient's booking there). Only while the lease record exists, so the
-- writer and any number of reconcilers can race to give one lease back and one of them does.
--
-- KEYS[1] free           the schedule's free numbers (zset or list, see ARGV[2])
-- KEYS[2] leases         zset request id -> lease deadline
-- KEYS[3] lease_records  hash request id -> "schedule|number|patient|department"
-- KEYS[4] in_flight      hash schedule id -> leases not yet settled
-- KEYS[5] counters       (optional) the slot's patient counts, to undo the take's increments
-- ARGV[1] request id, ARGV[2] "zset" or "list", or "" to keep the number out of Redis
--
-- Returns 1 if the lease was undone, 0 if it was already settled (a lease left without its
-- record is dropped: there is nothing to give back).
local request_id = ARGV[1]
local store = ARGV[2]

local record = redis.call('HGET', KEYS[3], request_id)
if not record then
    redis.call('ZREM', KEYS[2], request_id)
    return 0
end
local schedule, number, patient, department =
    string.match(record, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')

if store == 'zset' then
    redis.call('ZADD', KEYS[1], number, number)
elseif store == 'list' and not redis.call('LPOS', KEYS[1], number) then
    redis.call('RPUSH', KEYS[1], number)
end

if KEYS[5] and redis.call('HDEL', KEYS[5], patient .. ':s:' .. schedule) == 1 then
    for _, field in ipairs({patient .. ':day', patient .. ':d:' .. department}) do
        if redis.call('HINCRBY', KEYS[5], field, -1) <= 0 then
            redis.call('HDEL', KEYS[5], field)
        end
    end
end

if redis.call('HINCRBY', KEYS[4], schedule, -1) <= 0 then
    redis.call('HDEL', KEYS[4], schedule)
end
redis.call('HDEL', KEYS[3], request_id)
redis.call('ZREM', KEYS[2], request_id)
return 1
