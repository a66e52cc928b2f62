-- load.lua: write a slot's state derived from the ledger, only where it is missing, so
-- workers loading the same slot at once, or a load racing a new schedule, cannot undo each
-- other's work or the bookings taken since.
--
-- KEYS[1] slot       hash {loaded, max_per_day, max_per_department}; present once loaded
-- KEYS[2] schedules  set of loaded schedule ids
-- KEYS[3] blacklist  hash patient -> blacklisted until (epoch ms)
-- KEYS[3+i]          free numbers of schedule i (i = 1..ARGV[5])
-- KEYS[3+S+j]        counters of patient j (j = 1..ARGV[6])
-- ARGV[1] "1": only add schedules to a slot that is already loaded, else write nothing
-- ARGV[2] "zset" or "list": how free numbers are kept
-- ARGV[3] max_per_day, ARGV[4] max_per_department ("" for a strategy that keeps no rules)
-- ARGV[5] S schedules, ARGV[6] P patients, ARGV[7] B blacklist entries, then
--   S schedule ids, S free-number lists ("1-40,42,44-50"),
--   P counter lists ("day=2,d:cardio=1,s:17=1"), B pairs (patient, until ms)
--
-- Returns {1 if this call loaded the slot else 0, schedules added}.
local only_if_loaded = ARGV[1] == '1'
local store = ARGV[2]
local max_per_day = ARGV[3]
local max_per_department = ARGV[4]
local n_schedules = tonumber(ARGV[5])
local n_patients = tonumber(ARGV[6])
local n_blacklisted = tonumber(ARGV[7])
local CHUNK = 1000  -- stays far below Lua's limit on unpack()

local function push(key, values)
    if #values == 0 then
        return
    end
    if store == 'zset' then
        redis.call('ZADD', key, unpack(values))
    else
        redis.call('RPUSH', key, unpack(values))
    end
end

local function push_ranges(key, ranges)
    local batch = {}
    for token in string.gmatch(ranges, '[^,]+') do
        local low, high = string.match(token, '^(%d+)-(%d+)$')
        if not low then
            low, high = token, token
        end
        for number = tonumber(low), tonumber(high) do
            if store == 'zset' then
                batch[#batch + 1] = number
            end
            batch[#batch + 1] = number
            if #batch >= CHUNK then
                push(key, batch)
                batch = {}
            end
        end
    end
    push(key, batch)
end

local loaded = redis.call('EXISTS', KEYS[1]) == 1
if only_if_loaded and not loaded then
    return {0, 0}
end

local first_free_key = 4
local first_patient_key = first_free_key + n_schedules
local first_id = 8
local first_ranges = first_id + n_schedules
local first_counters = first_ranges + n_schedules
local first_blacklisted = first_counters + n_patients

if not loaded then
    -- Whatever is left of a slot without its marker is stale: start from the ledger's view.
    redis.call('DEL', KEYS[2], KEYS[3])
    for i = first_free_key, first_patient_key + n_patients - 1 do
        redis.call('DEL', KEYS[i])
    end
end

local added = 0
for i = 0, n_schedules - 1 do
    if redis.call('SADD', KEYS[2], ARGV[first_id + i]) == 1 then
        push_ranges(KEYS[first_free_key + i], ARGV[first_ranges + i])
        added = added + 1
    end
end

if loaded then
    return {0, added}
end

for j = 0, n_patients - 1 do
    local fields = {}
    for field, count in string.gmatch(ARGV[first_counters + j], '([^,=]+)=(%d+)') do
        fields[#fields + 1] = field
        fields[#fields + 1] = count
    end
    redis.call('HSET', KEYS[first_patient_key + j], unpack(fields))
end

local batch = {}
for k = 0, 2 * n_blacklisted - 1 do
    batch[#batch + 1] = ARGV[first_blacklisted + k]
    if #batch >= CHUNK then
        redis.call('HSET', KEYS[3], unpack(batch))
        batch = {}
    end
end
if #batch > 0 then
    redis.call('HSET', KEYS[3], unpack(batch))
end

if max_per_day == '' then
    redis.call('HSET', KEYS[1], 'loaded', 1)
else
    redis.call('HSET', KEYS[1], 'loaded', 1,
        'max_per_day', max_per_day, 'max_per_department', max_per_department)
end
return {1, added}
