-- Named queries of HIS sync and the schedule upsert by external_id (core/his_sync/).

-- name: his_lock_hospital
-- One sync (or upsert) of a hospital's schedules at a time: each reads what the last wrote.
SELECT pg_advisory_xact_lock(hashtextextended('his-sync/' || $1, 0));

-- name: his_live_schedules
-- The hospital's schedules that carry an external_id and are not suspended; $2 NULL: all of
-- them, else those of these external ids.
SELECT s.id, s.hospital_id, s.department_id, s.doctor_id, s.visit_date, s.period, s.capacity,
       s.fee_cents, s.opens_at, s.external_id
FROM schedules s
WHERE s.hospital_id = $1 AND s.external_id IS NOT NULL AND s.suspended_at IS NULL
  AND ($2::text[] IS NULL OR s.external_id = ANY($2::text[]))
ORDER BY s.id;

-- name: his_live_names
-- The hospital's departments and doctors that exist (not deleted): what a feed may name.
SELECT 'department' AS kind, d.id FROM departments d
WHERE d.hospital_id = $1 AND d.deleted_at IS NULL
UNION ALL
SELECT 'doctor' AS kind, d.id FROM doctors d
WHERE d.hospital_id = $1 AND d.deleted_at IS NULL;

-- name: his_lock_schedules
-- The rows a sync changes, locked against every booking's key share (see insert_booking) in
-- id order, so bookings of them wait for the sync or went first.
SELECT s.id FROM schedules s
WHERE s.hospital_id = $1 AND s.id = ANY($2::bigint[])
ORDER BY s.id
FOR UPDATE;

-- name: his_highest_numbers
-- Per schedule: the highest number a booking holds, and the highest any booking ever named
-- (a cancelled one still refers to its number, so that number cannot go).
SELECT b.schedule_id AS id,
       coalesce(max(b.number) FILTER (WHERE b.held), 0) AS held,
       max(b.number) AS named
FROM bookings b
WHERE b.hospital_id = $1 AND b.schedule_id = ANY($2::bigint[])
GROUP BY b.schedule_id;

-- name: his_update_schedules
-- New capacity, fee and opening time; the version moves, so pg-optimistic's readers retry.
UPDATE schedules s
SET capacity = u.capacity, fee_cents = u.fee_cents, opens_at = u.opens_at,
    version = s.version + 1
FROM unnest($2::bigint[], $3::int[], $4::bigint[], $5::timestamptz[])
    AS u(id, capacity, fee_cents, opens_at)
WHERE s.hospital_id = $1 AND s.id = u.id;

-- name: his_add_numbers
-- The numbers from each schedule's old capacity ($3) up to its new one ($4), free.
INSERT INTO schedule_numbers (hospital_id, schedule_id, number)
SELECT $1, g.id, n
FROM unnest($2::bigint[], $3::int[], $4::int[]) AS g(id, before, after),
     generate_series(g.before + 1, g.after) AS n;

-- name: his_drop_numbers
-- The numbers above each schedule's new capacity ($3); his_highest_numbers found them free
-- and never booked, under the schedule's lock.
DELETE FROM schedule_numbers n
USING unnest($2::bigint[], $3::int[]) AS g(id, after)
WHERE n.hospital_id = $1 AND n.schedule_id = g.id AND n.number > g.after;
