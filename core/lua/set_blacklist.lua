-- set_blacklist.lua: update one patient's blacklist entry in a slot that is already loaded
-- (a slot loaded later reads the blacklist from the ledger itself).
--
-- KEYS[1] slot       hash; absent until loaded
-- KEYS[2] blacklist  hash patient -> blacklisted until (epoch ms)
-- ARGV[1] patient id, ARGV[2] until (epoch ms), or "" to lift the entry
--
-- Returns 1 if the slot was updated, 0 if it is not loaded.
local patient = ARGV[1]
local until_ms = ARGV[2]

if redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
end
if until_ms == '' then
    redis.call('HDEL', KEYS[2], patient)
else
    redis.call('HSET', KEYS[2], patient, until_ms)
end
return 1
