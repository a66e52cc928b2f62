-- confirm.lua: settle leases without giving their numbers back, because the ledger holds
-- their bookings (or holds their numbers for someone else).
--
-- KEYS[1] leases         zset request id -> lease deadline
-- KEYS[2] lease_records  hash request id -> "schedule|number|patient|department"
-- KEYS[3] in_flight      hash schedule id -> leases not yet settled
-- ARGV    request ids
--
-- Returns how many leases were settled by this call.
local settled = 0
for _, request_id in ipairs(ARGV) do
    local record = redis.call('HGET', KEYS[2], request_id)
    if record then
        local schedule = string.match(record, '^([^|]*)|')
        if redis.call('HINCRBY', KEYS[3], schedule, -1) <= 0 then
            redis.call('HDEL', KEYS[3], schedule)
        end
        redis.call('HDEL', KEYS[2], request_id)
        settled = settled + 1
    end
    redis.call('ZREM', KEYS[1], request_id)
end
return settled
