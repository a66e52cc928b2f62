-- confirm.lua: settle leases without giving their numbers back, because the ledger holds
-- their bookings. A written lease whose record is gone lost it with the rest of Redis's
-- state: the slot was reloaded from a snapshot that may have missed the row, so the
-- booking is counted again here (its number out, the patient's counts in) unless the
-- reload saw it, or it was released since.
--
-- KEYS[1] leases         zset lease id -> lease deadline
-- KEYS[2] lease_records  hash lease id -> "schedule|number|patient|department|request id"
-- KEYS[3] in_flight      hash schedule id -> leases not yet settled
-- KEYS[4] lease_requests hash request id -> the lease id out for it
-- KEYS[5] slot, KEYS[6] schedules, KEYS[7] released, KEYS[8] counters (see load.lua)
-- KEYS[9..]              free-number bitmaps of the schedules of the leases below
-- ARGV[1] "1" if the slot keeps the patients' counts, then 6
--   fields per lease: lease id, schedule id, number, patient id, department id, and the
--   index in KEYS of its schedule's free numbers (0: only settle it)
--
-- Returns how many leases were settled by this call.
local counts = ARGV[1] == '1'
local settled = 0

local function count_again(lease, schedule, number, patient, department, free)
    if redis.call('EXISTS', KEYS[5]) == 0 or redis.call('SISMEMBER', KEYS[6], schedule) == 0
        or redis.call('SISMEMBER', KEYS[7], lease) == 1 then
        return
    end
    redis.call('SETBIT', free, number, 0)
    local schedule_field = patient .. ':s:' .. schedule
    if counts and redis.call('HSETNX', KEYS[8], schedule_field, lease) == 1 then
        redis.call('HINCRBY', KEYS[8], patient .. ':day', 1)
        redis.call('HINCRBY', KEYS[8], patient .. ':d:' .. department, 1)
    end
end

for i = 2, #ARGV, 6 do
    local lease = ARGV[i]
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
    elseif ARGV[i + 5] ~= '0' then
        count_again(lease, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
            KEYS[tonumber(ARGV[i + 5])])
    end
    redis.call('ZREM', KEYS[1], lease)
end
return settled
