-- set_rules.lua: update the copy of a hospital's rules in a slot that is already loaded (a
-- slot loaded later reads the new rules from the ledger itself).
--
-- KEYS[1] slot  hash {max_per_day, max_per_department}; absent until loaded
-- ARGV[1] max_per_day, ARGV[2] max_per_department
--
-- Returns 1 if the slot was updated, 0 if it is not loaded.
local max_per_day = ARGV[1]
local max_per_department = ARGV[2]

if redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
end
redis.call('HSET', KEYS[1], 'max_per_day', max_per_day, 'max_per_department', max_per_department)
return 1
