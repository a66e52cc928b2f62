-- resize.lua: a schedule's capacity changed in the ledger (HIS sync, upsert): offer the
-- numbers added, stop offering those taken off. Does nothing while the slot or schedule is
-- not loaded (loading reads the ledger anyway) or once the schedule is closed. Once per
-- change: a resent resize cannot offer again a number taken since.
--
-- KEYS[1] slot       hash; absent until the slot is loaded
-- KEYS[2] schedules  set of loaded schedule ids
-- KEYS[3] free       bitmap of the schedule's free numbers (bit n set: number n is free)
-- KEYS[4] released   set of what was applied once since the slot was loaded (see
--                    release.lua); a resize is there as "resize:<its id>"
-- KEYS[5] closed     set of the ids of suspended schedules
-- ARGV[1] schedule id, ARGV[2] capacity before, ARGV[3] capacity after, ARGV[4] the
-- change's id
--
-- Returns 1 if the change was applied, 0 if not loaded, closed or applied before.
local schedule = ARGV[1]
local before = tonumber(ARGV[2])
local after = tonumber(ARGV[3])
local marker = 'resize:' .. ARGV[4]

if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('SISMEMBER', KEYS[2], schedule) == 0
    or redis.call('SISMEMBER', KEYS[5], schedule) == 1 then
    return 0
end
if redis.call('SADD', KEYS[4], marker) == 0 then
    return 0
end

-- Numbers taken off are free no more (held ones were refused by the ledger: a cut below a
-- held number is a conflict); numbers added are free.
local offer = after > before and 1 or 0
for number = math.min(before, after) + 1, math.max(before, after) do
    redis.call('SETBIT', KEYS[3], number, offer)
end
return 1
