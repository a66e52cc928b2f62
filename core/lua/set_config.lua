-- set_config.lua: replace the copy of a hospital's rules and blacklist in a slot that is
-- already loaded (a slot loaded later reads them from the ledger itself), unless the slot
-- already has this version or a newer one: copies applied out of order keep the newest.
--
-- KEYS[1] slot       hash {max_per_day, max_per_department, config_version}; absent until loaded
-- KEYS[2] blacklist  hash patient -> blacklisted until (epoch ms)
-- ARGV[1] the hospital's config version, ARGV[2] max_per_day, ARGV[3] max_per_department,
-- then (patient, until ms) pairs: every blacklist entry in force
--
-- Returns 1 if the slot was updated, 0 if it is not loaded or already as new.
local version = tonumber(ARGV[1])
local CHUNK = 1000  -- stays far below Lua's limit on unpack()

if redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'config_version') or -1) >= version then
    return 0
end
redis.call('HSET', KEYS[1], 'max_per_day', ARGV[2], 'max_per_department', ARGV[3],
    'config_version', version)
redis.call('DEL', KEYS[2])
for start = 4, #ARGV, CHUNK do
    redis.call('HSET', KEYS[2], unpack(ARGV, start, math.min(start + CHUNK - 1, #ARGV)))
end
return 1
