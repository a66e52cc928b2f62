-- release.lua: make a cancelled booking's number bookable again (the ledger has already
-- cancelled it). Does nothing while the slot is not loaded: loading reads the ledger anyway.
-- Once per booking: a resent release changes nothing, so it can neither put back a number
-- someone took since nor lower the counts of the patient's next booking there.
--
-- KEYS[1] slot       hash; absent until the slot is loaded
-- KEYS[2] schedules  set of loaded schedule ids
-- KEYS[3] free       bitmap of the schedule's free numbers
-- KEYS[4] released   set of the request ids of bookings released since the slot was loaded
-- KEYS[5] counters   (optional) the slot's patient counts, for strategies that keep them
-- ARGV[1] schedule id, ARGV[2] number, ARGV[3] patient id, ARGV[4] department id,
-- ARGV[5] the booking's request id
--
-- Returns 1 if the number went back, 0 if the slot or schedule is not loaded or the booking
-- was released before.
local schedule = ARGV[1]
local number = ARGV[2]
local patient = ARGV[3]
local department = ARGV[4]
local request_id = ARGV[5]

if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('SISMEMBER', KEYS[2], schedule) == 0 then
    return 0
end
if redis.call('SADD', KEYS[4], request_id) == 0 then
    return 0
end

redis.call('SETBIT', KEYS[3], number, 1)

-- Only counts that describe this booking go down (a booking Redis never counted, written
-- while the slot was being reloaded, has none).
local schedule_field = patient .. ':s:' .. schedule
if KEYS[5] and redis.call('HGET', KEYS[5], schedule_field) == request_id then
    redis.call('HDEL', KEYS[5], schedule_field)
    for _, field in ipairs({patient .. ':day', patient .. ':d:' .. department}) do
        if redis.call('HINCRBY', KEYS[5], field, -1) <= 0 then
            redis.call('HDEL', KEYS[5], field)
        end
    end
end
return 1
