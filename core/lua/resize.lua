-- resize.lua: a schedule's capacity changed in the ledger (HIS sync, upsert): offer the
-- numbers added, stop offering those taken off. Does nothing while the slot or schedule is
-- not loaded (loading reads the ledger anyway) or once the schedule is closed. Once per
-- change: a resent resize cannot offer again a number taken since.
--
-- KEYS[1] slot       hash; absent until the slot is loaded
-- KEYS[2] schedules  set of loaded schedule ids
-- KEYS[3] free       the schedule's free numbers (zset or list, see ARGV[4])
-- KEYS[4] released   set of what was applied once since the slot was loaded (see
--                    release.lua); a resize is there as "resize:<its id>"
-- KEYS[5] closed     set of the ids of suspended schedules
-- ARGV[1] schedule id, ARGV[2] capacity before, ARGV[3] capacity after,
-- ARGV[4] "zset" or "list", ARGV[5] the change's id
--
-- Returns 1 if the change was applied, 0 if not loaded, closed or applied before.
local schedule = ARGV[1]
local before = tonumber(ARGV[2])
local after = tonumber(ARGV[3])
local store = ARGV[4]
local marker = 'resize:' .. ARGV[5]
local CHUNK = 1000  -- stays far below Lua's limit on unpack()

if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('SISMEMBER', KEYS[2], schedule) == 0
    or redis.call('SISMEMBER', KEYS[5], schedule) == 1 then
    return 0
end
if redis.call('SADD', KEYS[4], marker) == 0 then
    return 0
end

if after < before then
    if store == 'zset' then
        redis.call('ZREMRANGEBYSCORE', KEYS[3], '(' .. after, '+inf')
    else
        for number = after + 1, before do
            redis.call('LREM', KEYS[3], 0, number)
        end
    end
    return 1
end

local batch = {}
for number = before + 1, after do
    if store == 'zset' then
        batch[#batch + 1] = number
    end
    batch[#batch + 1] = number
    if #batch >= CHUNK or number == after then
        if store == 'zset' then
            redis.call('ZADD', KEYS[3], unpack(batch))
        else
            redis.call('RPUSH', KEYS[3], unpack(batch))
        end
        batch = {}
    end
end
return 1
