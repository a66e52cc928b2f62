-- Named queries of the Redis strategies (strategies/redis_*.py): loading a slot's Redis state
-- from the ledger, and the questions the writer and the reconciler ask about a lease.

-- name: redis_slot_free_numbers
-- Every schedule of one hospital and date with its free numbers as ranges ("1-40,42,44-50"):
-- a 100,000-number schedule loads as a few bytes while it is still empty.
SELECT s.id,
       coalesce((
           SELECT string_agg(CASE WHEN low = high THEN low::text ELSE low || '-' || high END,
                             ',' ORDER BY low)
           FROM (SELECT min(number) AS low, max(number) AS high
                 FROM (SELECT number, number - row_number() OVER (ORDER BY number) AS island
                       FROM schedule_numbers n
                       WHERE n.schedule_id = s.id AND n.booking_id IS NULL) AS free
                 GROUP BY island) AS ranges
       ), '') AS free
FROM schedules s
WHERE s.hospital_id = $1 AND s.visit_date = $2
ORDER BY s.id;

-- name: redis_slot_rules
SELECT coalesce(h.max_per_day, 2) AS max_per_day,
       coalesce(h.max_per_department_per_day, 1) AS max_per_department_per_day
FROM (SELECT 1) AS one LEFT JOIN hospitals h ON h.id = $1;

-- name: redis_slot_blacklist
-- Entries still in force, with their end in epoch milliseconds (what the Lua scripts compare).
SELECT patient_id, (extract(epoch FROM until) * 1000)::bigint AS until_ms
FROM blacklist
WHERE hospital_id = $1 AND until > now();

-- name: redis_blacklist_entry
SELECT (extract(epoch FROM until) * 1000)::bigint AS until_ms
FROM blacklist
WHERE hospital_id = $1 AND patient_id = $2;

-- name: redis_slot_bookings
-- The active bookings of one hospital and date: the patients' counters.
SELECT patient_id, schedule_id, department_id
FROM bookings
WHERE hospital_id = $1 AND visit_date = $2 AND status = 'booked';

-- name: redis_refusal_cause
-- Why the ledger refused a (request, number) pair: each unique rule it could have hit.
SELECT
    EXISTS (SELECT 1 FROM schedule_numbers
            WHERE schedule_id = $1 AND number = $2 AND booking_id IS NOT NULL) AS number_held,
    EXISTS (SELECT 1 FROM bookings
            WHERE $4::text IS NOT NULL AND patient_id = $3 AND idempotency_key = $4) AS key_used,
    EXISTS (SELECT 1 FROM bookings
            WHERE schedule_id = $1 AND patient_id = $3 AND status = 'booked') AS patient_active;

-- name: redis_written_requests
-- Which of these booking attempts reached the ledger (the reconciler's question).
SELECT request_id::text AS request_id FROM bookings WHERE request_id = ANY($1::uuid[]);
