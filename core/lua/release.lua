-- release.lua: make a cancelled booking's number bookable again (the ledger has already
-- cancelled it). Does nothing while the slot is not loaded: loading reads the ledger anyway.
-- Safe to resend: the number is added once and the counts go down once.
--
-- KEYS[1] slot       hash; absent until the slot is loaded
-- KEYS[2] schedules  set of loaded schedule ids
-- KEYS[3] free       the schedule's free numbers (zset or list, see ARGV[5])
-- KEYS[4] counters   (optional) the slot's patient counts, for strategies that keep them
-- ARGV[1] schedule id, ARGV[2] number, ARGV[3] patient id, ARGV[4] department id,
-- ARGV[5] "zset" or "list"
--
-- Returns 1 if the number went back, 0 if the slot or schedule is not loaded.
local schedule = ARGV[1]
local number = ARGV[2]
local patient = ARGV[3]
local department = ARGV[4]
local store = ARGV[5]

if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('SISMEMBER', KEYS[2], schedule) == 0 then
    return 0
end

if store == 'zset' then
    redis.call('ZADD', KEYS[3], number, number)
elseif not redis.call('LPOS', KEYS[3], number) then
    redis.call('RPUSH', KEYS[3], number)
end

if KEYS[4] and redis.call('HDEL', KEYS[4], patient .. ':s:' .. schedule) == 1 then
    for _, field in ipairs({patient .. ':day', patient .. ':d:' .. department}) do
        if redis.call('HINCRBY', KEYS[4], field, -1) <= 0 then
            redis.call('HDEL', KEYS[4], field)
        end
    end
end
return 1
