-- close.lua: close a suspended schedule in its slot: takes of it answer closed from now on,
-- and its free numbers go (the ledger has suspended it already). Works on a slot not loaded
-- yet too, so a load racing this call cannot open the schedule again.
--
-- KEYS[1] closed  set of the ids of suspended schedules
-- KEYS[2] free    the schedule's free numbers
-- ARGV[1] schedule id
--
-- Returns 1 if the schedule was open in this slot, 0 if it was closed already.
local schedule = ARGV[1]

redis.call('DEL', KEYS[2])
return redis.call('SADD', KEYS[1], schedule)
