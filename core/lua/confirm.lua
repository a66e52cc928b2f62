-- confirm.lua: settle leases without giving their numbers back, because the ledger holds
-- their bookings (or holds their numbers for someone else).
--
-- KEYS[1] leases         zset lease id -> lease deadline
-- KEYS[2] lease_records  hash lease id -> "schedule|number|patient|department|request id"
-- KEYS[3] in_flight      hash schedule id -> leases not yet settled
-- KEYS[4] lease_requests hash request id -> the lease id out for it
-- ARGV    lease ids
--
-- Returns how many leases were settled by this call.
local settled = 0
for _, lease in ipairs(ARGV) do
    local record = redis.call('HGET', KEYS[2], lease)
    if record then
        local schedule, request_id = string.match(record, '^([^|]*)|.*|([^|]*)$')
        if redis.call('HINCRBY', KEYS[3], schedule, -1) <= 0 then
            redis.call('HDEL', KEYS[3], schedule)
        end
        if redis.call('HGET', KEYS[4], request_id) == lease then
            redis.call('HDEL', KEYS[4], request_id)
        end
        redis.call('HDEL', KEYS[2], lease)
        settled = settled + 1
    end
    redis.call('ZREM', KEYS[1], lease)
end
return settled
