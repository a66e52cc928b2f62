-- Named queries of the Redis strategies (strategies/redis_gate/): loading a slot's Redis state
-- from the ledger, the claims that settle a lease, and the outbox of Redis work the ledger owes.

-- name: redis_slot_free_numbers
-- Every schedule of one hospital and date with its free numbers as ranges ("1-40,42,44-50"):
-- a 100,000-number schedule loads as a few bytes while it is still empty. A suspended one
-- has none to offer.
SELECT s.id, s.suspended_at IS NOT NULL AS suspended,
       CASE WHEN s.suspended_at IS NOT NULL THEN '' ELSE coalesce((
           SELECT string_agg(CASE WHEN low = high THEN low::text ELSE low || '-' || high END,
                             ',' ORDER BY low)
           FROM (SELECT min(number) AS low, max(number) AS high
                 FROM (SELECT number, number - row_number() OVER (ORDER BY number) AS island
                       FROM schedule_numbers n
                       WHERE n.hospital_id = s.hospital_id AND n.schedule_id = s.id
                         AND n.booking_id IS NULL) AS free
                 GROUP BY island) AS ranges
       ), '') END AS free
FROM schedules s
WHERE s.hospital_id = $1 AND s.visit_date = $2
ORDER BY s.id;

-- name: redis_slot_rules
SELECT coalesce(h.max_per_day, 2) AS max_per_day,
       coalesce(h.max_per_department_per_day, 1) AS max_per_department_per_day,
       coalesce(h.config_version, 0) AS config_version
FROM (SELECT 1) AS one LEFT JOIN hospitals h ON h.id = $1;

-- name: redis_config_version
SELECT coalesce((SELECT config_version FROM hospitals WHERE id = $1), 0);

-- name: redis_slot_blacklist
-- Entries still in force, with their end in epoch milliseconds (what the Lua scripts compare).
SELECT patient_id, (extract(epoch FROM until) * 1000)::bigint AS until_ms
FROM blacklist
WHERE hospital_id = $1 AND until > now();

-- name: redis_slot_bookings
-- The bookings holding numbers of one hospital and date: the patients' counters.
SELECT patient_id, schedule_id, department_id, request_id::text AS request_id
FROM bookings
WHERE hospital_id = $1 AND visit_date = $2 AND held;

-- name: redis_slot_released
-- Cancelled bookings of one hospital and date whose release is still owed, and capacity
-- changes still owed: the snapshot already has them, so one sent later must change nothing.
SELECT b.request_id::text AS request_id
FROM redis_releases r JOIN bookings b ON b.hospital_id = r.hospital_id AND b.id = r.booking_id
WHERE r.hospital_id = $1 AND b.visit_date = $2
UNION ALL
SELECT 'resize:' || z.id AS request_id
FROM redis_resizes z JOIN schedules s ON s.hospital_id = z.hospital_id AND s.id = z.schedule_id
WHERE z.hospital_id = $1 AND s.visit_date = $2;

-- name: redis_refusal_cause
-- Why the ledger refused a lease's row: each rule the write could have hit.
SELECT
    EXISTS (SELECT 1 FROM schedule_numbers
            WHERE hospital_id = $5 AND schedule_id = $1 AND number = $2
              AND booking_id IS NOT NULL) AS number_held,
    EXISTS (SELECT 1 FROM bookings
            WHERE $4::text IS NOT NULL AND hospital_id = $5 AND patient_id = $3
              AND idempotency_key = $4) AS key_used,
    EXISTS (SELECT 1 FROM bookings
            WHERE hospital_id = $5 AND schedule_id = $1 AND patient_id = $3
              AND held) AS patient_active,
    EXISTS (SELECT 1 FROM blacklist
            WHERE hospital_id = $5 AND patient_id = $3 AND until > now()) AS blacklisted,
    EXISTS (SELECT 1 FROM schedules
            WHERE hospital_id = $5 AND id = $1 AND suspended_at IS NOT NULL) AS suspended,
    NOT EXISTS (SELECT 1 FROM schedule_numbers
                WHERE hospital_id = $5 AND schedule_id = $1 AND number = $2) AS number_gone;

-- name: redis_abandon_leases
-- Claims leases for their give-back, and answers the ones this statement won. A writer's
-- claim still in flight makes it wait and lose if the write commits.
INSERT INTO lease_claims (hospital_id, lease_id, outcome)
SELECT hospital_id, lease_id, 'abandoned'
FROM unnest($1::text[], $2::uuid[]) AS l(hospital_id, lease_id)
ON CONFLICT DO NOTHING
RETURNING lease_id::text AS lease_id;

-- name: redis_lease_outcomes
-- How claimed leases ended: the claim, and the row written under a 'written' one (a fresh
-- statement after the claim, so it sees the writes it waited for).
SELECT c.lease_id::text AS lease_id, c.outcome, b.*
FROM unnest($1::text[], $2::uuid[]) AS l(hospital_id, lease_id)
JOIN lease_claims c ON c.hospital_id = l.hospital_id AND c.lease_id = l.lease_id
LEFT JOIN bookings b ON b.hospital_id = c.hospital_id AND b.request_id = c.lease_id;

-- name: redis_prune_claims
-- Claims of leases long settled: no writer is still waiting to write under them.
-- Crosses hospitals: a reconciler's sweep.
DELETE FROM lease_claims WHERE claimed_at < now() - make_interval(secs => $1);

-- name: redis_owe_releases
INSERT INTO redis_releases (hospital_id, booking_id)
SELECT * FROM unnest($1::text[], $2::bigint[])
ON CONFLICT DO NOTHING;

-- name: redis_releases_done
DELETE FROM redis_releases
WHERE (hospital_id, booking_id) IN (SELECT * FROM unnest($1::text[], $2::bigint[]));

-- name: redis_releases_due
-- Releases left over (their process failed or died after the commit), oldest first.
-- Crosses hospitals: a reconciler's sweep.
SELECT b.* FROM redis_releases r
JOIN bookings b ON b.hospital_id = r.hospital_id AND b.id = r.booking_id
WHERE r.created_at < now() - make_interval(secs => $1)
ORDER BY r.created_at
LIMIT $2;

-- name: redis_owe_closures
INSERT INTO redis_closures (hospital_id, schedule_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING;

-- name: redis_closures_done
DELETE FROM redis_closures WHERE hospital_id = $1 AND schedule_id = $2;

-- name: redis_closures_due
-- Closures left over, with their schedules.
SELECT s.*
FROM redis_closures c
JOIN schedules s ON s.hospital_id = c.hospital_id AND s.id = c.schedule_id
WHERE c.created_at < now() - make_interval(secs => $1)
ORDER BY c.created_at
LIMIT $2;

-- name: redis_owe_config_sync
INSERT INTO redis_config_syncs (hospital_id, version)
SELECT id, config_version FROM hospitals WHERE id = $1
ON CONFLICT (hospital_id) DO UPDATE SET version = EXCLUDED.version;

-- name: redis_config_synced
DELETE FROM redis_config_syncs WHERE hospital_id = $1 AND version <= $2;

-- name: redis_config_syncs_due
-- Crosses hospitals: a reconciler's sweep.
SELECT hospital_id FROM redis_config_syncs
WHERE created_at < now() - make_interval(secs => $1)
ORDER BY created_at
LIMIT $2;

-- name: redis_owe_resizes
INSERT INTO redis_resizes (hospital_id, schedule_id, before, after)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[]);

-- name: redis_resizes_of
-- The capacity changes owed for these schedules of one hospital, in the order they were made.
SELECT z.id AS resize_id, z.before, z.after, s.*
FROM redis_resizes z JOIN schedules s ON s.hospital_id = z.hospital_id AND s.id = z.schedule_id
WHERE z.hospital_id = $1 AND z.schedule_id = ANY($2::bigint[])
ORDER BY z.id;

-- name: redis_resizes_done
DELETE FROM redis_resizes WHERE hospital_id = $1 AND id = ANY($2::bigint[]);

-- name: redis_resizes_due
-- Capacity changes left over, with their schedules, in the order they were made.
SELECT z.id AS resize_id, z.before, z.after, s.*
FROM redis_resizes z JOIN schedules s ON s.hospital_id = z.hospital_id AND s.id = z.schedule_id
WHERE z.created_at < now() - make_interval(secs => $1)
ORDER BY z.id
LIMIT $2;
