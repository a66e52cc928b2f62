-- load.lua: write a slot's state derived from the ledger, only where it is missing, so
-- workers loading the same slot at once, or a load racing a new schedule, cannot undo each
-- other's work or the bookings taken since.
--
-- KEYS[1] slot           hash {loaded, max_per_day, max_per_department, config_version};
--                        present once loaded
-- KEYS[2] schedules      set of loaded schedule ids
-- KEYS[3] blacklist      hash patient -> blacklisted until (epoch ms)
-- KEYS[4] counters       hash of the patients' counts (see take.lua)
-- KEYS[5] leases, KEYS[6] lease_records, KEYS[7] in_flight, KEYS[8] lease_requests (see
--                        take.lua)
-- KEYS[9] released       set of the request ids of bookings released (see release.lua)
-- KEYS[10] closed        set of the ids of suspended schedules (see close.lua)
-- KEYS[10+i]             free-number bitmap of schedule i (i = 1..ARGV[5]; bit n set:
--                        number n free)
-- ARGV[1] "1": only add schedules to a slot that is already loaded, else write nothing
-- ARGV[2] max_per_day, ARGV[3] max_per_department, ARGV[4] the hospital's config version
--   ("" for a strategy that keeps no rules)
-- ARGV[5] S schedules, ARGV[6] C counter fields, ARGV[7] B blacklist entries, ARGV[8] R
--   released bookings, ARGV[9] X suspended schedules, then S schedule ids, S free-number
--   lists ("1-40,42,44-50"), C pairs (field, value), B pairs (patient, until ms), R request
--   ids, X schedule ids
--
-- Returns {1 if this call loaded the slot else 0, schedules added}.
local only_if_loaded = ARGV[1] == '1'
local max_per_day = ARGV[2]
local max_per_department = ARGV[3]
local config_version = ARGV[4]
local n_schedules = tonumber(ARGV[5])
local n_counters = tonumber(ARGV[6])
local n_blacklisted = tonumber(ARGV[7])
local n_released = tonumber(ARGV[8])
local n_closed = tonumber(ARGV[9])
local CHUNK = 1000  -- stays far below Lua's limit on unpack()

local first_free_key = 11
local first_id = 10
local first_ranges = first_id + n_schedules
local first_counter = first_ranges + n_schedules
local first_blacklisted = first_counter + 2 * n_counters
local first_released = first_blacklisted + 2 * n_blacklisted
local first_closed = first_released + n_released

-- Sets the bits low..high: whole bytes in one SETRANGE (bit n is bit 7 - n % 8 of byte
-- n // 8, so a byte of ones is eight free numbers), the few at either end one by one.
-- Only ever sets bits, so it adds to numbers already there instead of replacing them.
local function set_bits(key, low, high)
    local first_byte = math.ceil(low / 8)
    local last_byte = math.floor((high + 1) / 8) - 1
    if first_byte > last_byte then
        for number = low, high do
            redis.call('SETBIT', key, number, 1)
        end
        return
    end
    for number = low, first_byte * 8 - 1 do
        redis.call('SETBIT', key, number, 1)
    end
    redis.call('SETRANGE', key, first_byte, string.rep('\255', last_byte - first_byte + 1))
    for number = (last_byte + 1) * 8, high do
        redis.call('SETBIT', key, number, 1)
    end
end

-- A new bitmap is made at its full length first: grown bit by bit, Redis would keep up to
-- as much again spare for further growth that never comes.
local function set_ranges(key, ranges)
    local last = tonumber(string.match(ranges, '(%d+)$'))
    if last and redis.call('EXISTS', key) == 0 then
        redis.call('SET', key, string.rep('\0', math.floor(last / 8) + 1))
    end
    for token in string.gmatch(ranges, '[^,]+') do
        local low, high = string.match(token, '^(%d+)-(%d+)$')
        if not low then
            low, high = token, token
        end
        set_bits(key, tonumber(low), tonumber(high))
    end
end

local function add_args(command, key, first, count)
    for start = first, first + count - 1, CHUNK do
        local last = math.min(start + CHUNK - 1, first + count - 1)
        redis.call(command, key, unpack(ARGV, start, last))
    end
end

local loaded = redis.call('EXISTS', KEYS[1]) == 1
if only_if_loaded and not loaded then
    return {0, 0}
end

if not loaded then
    -- Whatever is left of a slot without its marker is stale (keys lost one by one):
    -- start again from the ledger's view, as after losing everything. Closed schedules
    -- stay closed: a suspension is for good, and close.lua may have run before this load.
    for i = 2, first_free_key + n_schedules - 1 do
        if i ~= 10 then
            redis.call('DEL', KEYS[i])
        end
    end
end

add_args('SADD', KEYS[10], first_closed, n_closed)
local added = 0
for i = 0, n_schedules - 1 do
    if redis.call('SADD', KEYS[2], ARGV[first_id + i]) == 1
        and redis.call('SISMEMBER', KEYS[10], ARGV[first_id + i]) == 0 then
        set_ranges(KEYS[first_free_key + i], ARGV[first_ranges + i])
        added = added + 1
    end
end

if loaded then
    return {0, added}
end

add_args('HSET', KEYS[4], first_counter, 2 * n_counters)
add_args('HSET', KEYS[3], first_blacklisted, 2 * n_blacklisted)
add_args('SADD', KEYS[9], first_released, n_released)
if max_per_day == '' then
    redis.call('HSET', KEYS[1], 'loaded', 1)
else
    redis.call('HSET', KEYS[1], 'loaded', 1, 'max_per_day', max_per_day,
        'max_per_department', max_per_department, 'config_version', config_version)
end
return {1, added}
