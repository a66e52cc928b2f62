-- Named ledger queries shared by every strategy. Each block starts with "-- name: NAME".
-- Strategy-specific SQL lives in its own file beside this one.

-- name: upsert_hospitals
INSERT INTO hospitals (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING;

-- name: upsert_departments
INSERT INTO departments (hospital_id, id)
SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING;

-- name: upsert_doctors
-- A doctor first named by a schedule works in that schedule's department.
INSERT INTO doctors (hospital_id, id, department_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING;

-- name: insert_schedules
INSERT INTO schedules (hospital_id, department_id, doctor_id, visit_date, period, capacity,
                       fee_cents, opens_at, external_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[], $6::int[],
                     $7::bigint[], $8::timestamptz[], $9::text[])
RETURNING id, hospital_id, department_id, doctor_id, visit_date, period, capacity, fee_cents,
          opens_at, external_id;

-- name: insert_schedule_numbers
INSERT INTO schedule_numbers (hospital_id, schedule_id, number)
SELECT s.hospital_id, s.id, n FROM unnest($1::text[], $2::bigint[], $3::int[])
    AS s(hospital_id, id, capacity),
     generate_series(1, s.capacity) AS n;

-- name: get_schedule
-- Crosses hospitals: a schedule by its id alone, as the API names it.
SELECT id, hospital_id, department_id, doctor_id, visit_date, period, capacity, fee_cents, opens_at,
       external_id
FROM schedules WHERE id = $1;

-- name: list_schedules
-- One page of schedules after the id $9 (keyset pagination in id order); every filter is
-- optional. A hospital administrator's list always carries its hospital ($1).
-- Crosses hospitals when $1 is NULL: browsing every hospital's schedules.
SELECT s.id, s.hospital_id, s.department_id, s.doctor_id, s.visit_date, s.period, s.capacity,
       s.fee_cents, s.opens_at, s.external_id,
       (SELECT count(*) FROM schedule_numbers n
         WHERE n.hospital_id = s.hospital_id AND n.schedule_id = s.id
           AND n.booking_id IS NULL) AS remaining
FROM schedules s
WHERE ($1::text IS NULL OR s.hospital_id = $1)
  AND ($2::text IS NULL OR s.department_id = $2)
  AND ($3::text IS NULL OR s.doctor_id = $3)
  AND ($4::date IS NULL OR s.visit_date = $4)
  AND ($5::date IS NULL OR s.visit_date >= $5)
  AND ($6::date IS NULL OR s.visit_date <= $6)
  AND ($7::text IS NULL OR s.period = $7)
  AND ($8::bigint IS NULL OR s.id > $8)
ORDER BY s.id
LIMIT $9;

-- name: stale_statistics
-- The booking tables whose planner statistics no longer describe them, by autovacuum's own
-- default rule (changed by more than 50 rows and 10% since the last ANALYZE, or never
-- analyzed). $1: numbers just added, which the cumulative statistics may not count yet.
SELECT c.oid::regclass::text AS name
FROM pg_class c JOIN pg_stat_user_tables t ON t.relid = c.oid
WHERE c.oid IN (to_regclass('schedule_numbers'), to_regclass('bookings'))
  AND (c.reltuples < 0
       OR t.n_mod_since_analyze + CASE WHEN c.oid = to_regclass('schedule_numbers')
                                       THEN $1 ELSE 0 END
          > 50 + 0.1 * c.reltuples);

-- name: remaining
SELECT count(*) FROM schedule_numbers
WHERE hospital_id = $1 AND schedule_id = $2 AND booking_id IS NULL;

-- name: get_rules
SELECT max_per_day, max_per_department_per_day, cancel_cutoff_minutes
FROM hospitals WHERE id = $1;

-- name: put_rules
-- Like every v1 write naming a hospital, this creates it, or brings a deleted one back.
INSERT INTO hospitals (id, max_per_day, max_per_department_per_day, cancel_cutoff_minutes)
VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET max_per_day = EXCLUDED.max_per_day,
    max_per_department_per_day = EXCLUDED.max_per_department_per_day,
    cancel_cutoff_minutes = EXCLUDED.cancel_cutoff_minutes, deleted_at = NULL;

-- name: put_blacklist
-- A manual entry replaces whatever was there, an automatic one included.
INSERT INTO blacklist (hospital_id, patient_id, until, source, since)
VALUES ($1, $2, $3, 'manual', now())
ON CONFLICT (hospital_id, patient_id) DO UPDATE
    SET until = EXCLUDED.until, source = EXCLUDED.source, since = EXCLUDED.since
RETURNING since;

-- name: delete_blacklist
DELETE FROM blacklist WHERE hospital_id = $1 AND patient_id = $2;

-- name: bump_config_version
-- In the transaction of every rules or blacklist change (see hospitals.config_version).
UPDATE hospitals SET config_version = config_version + 1 WHERE id = $1;

-- name: lock_patient_day
-- Serialises one patient's bookings and cancellations at one hospital on one date, so the
-- per-day rules are checked and applied in one step. Always taken before any schedule lock.
SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3::date::text, 0));

-- name: patient_day_check
-- The whole rule check of one booking in one round trip, under lock_patient_day.
SELECT
    EXISTS (SELECT 1 FROM blacklist bl WHERE bl.hospital_id = $2 AND bl.patient_id = $1
            AND bl.until > now()) AS blacklisted,
    EXISTS (SELECT 1 FROM bookings b WHERE b.hospital_id = $2 AND b.schedule_id = $5
            AND b.patient_id = $1 AND b.held) AS already_booked,
    (SELECT count(*) FROM bookings b WHERE b.patient_id = $1 AND b.hospital_id = $2
            AND b.visit_date = $3 AND b.held) AS day_count,
    (SELECT count(*) FROM bookings b WHERE b.patient_id = $1 AND b.hospital_id = $2
            AND b.visit_date = $3 AND b.department_id = $4 AND b.held) AS dept_count,
    coalesce(h.max_per_day, 2) AS max_per_day,
    coalesce(h.max_per_department_per_day, 1) AS max_per_department_per_day
FROM (SELECT 1) AS one LEFT JOIN hospitals h ON h.id = $2;

-- name: insert_booking
-- Writes one booking of schedule $1 (at hospital $7) holding number $3 and marks the number held, in one
-- statement. A paid schedule's booking starts pending_payment, its hold lapsing after the
-- hospital's payment window (in seconds instead where the database sets
-- slotrush.payment_window_seconds: a dev/test knob for benchmarks of lapses; see the README);
-- a free one is booked at once. Returns no row when the number is
-- held already, the (patient, schedule) or idempotency key is taken, or the schedule was
-- suspended (the key share lock makes a suspension wait for this write, or this write see it).
WITH s AS (
    SELECT s.*,
           CASE WHEN s.fee_cents > 0
                THEN now() + coalesce(make_interval(secs => nullif(current_setting(
                         'slotrush.payment_window_seconds', true), '')::float8),
                     make_interval(mins => h.payment_window_minutes)) END AS expires
    FROM schedules s JOIN hospitals h ON h.id = s.hospital_id
    WHERE s.hospital_id = $7 AND s.id = $1 AND s.suspended_at IS NULL
    FOR KEY SHARE OF s
), b AS (
    INSERT INTO bookings (schedule_id, patient_id, hospital_id, department_id, doctor_id,
                          visit_date, period, number, verification_code, status, fee_cents,
                          hold_expires_at, request_id, idempotency_key)
    SELECT s.id, $2, s.hospital_id, s.department_id, s.doctor_id, s.visit_date, s.period, $3,
           $4, CASE WHEN s.expires IS NULL THEN 'booked' ELSE 'pending_payment' END,
           s.fee_cents, s.expires, $5, $6
    FROM s
    ON CONFLICT DO NOTHING
    RETURNING *
), n AS (
    UPDATE schedule_numbers n SET booking_id = b.id FROM b
    WHERE n.hospital_id = b.hospital_id AND n.schedule_id = b.schedule_id
      AND n.number = b.number
)
SELECT * FROM b;

-- name: insert_bookings
-- The booking write of the Redis strategies, batched: one row per element of the arrays, each
-- under its lease ($4, also the row's request_id), with insert_booking's states and holds. A
-- row is written only if this statement wins its lease's claim ('written'): whoever gives a
-- number back claims 'abandoned' first (see lease_claims). A patient blacklisted in the
-- ledger, a suspended schedule, or a number the schedule no longer has, is refused whatever
-- Redis believed.
WITH r AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::uuid[], $5::text[],
                         $6::text[], $7::text[])
        AS r(schedule_id, patient_id, number, lease_id, verification_code, idempotency_key,
             hospital_id)
), claimed AS (
    INSERT INTO lease_claims (hospital_id, lease_id, outcome)
    SELECT hospital_id, lease_id, 'written' FROM r
    ON CONFLICT DO NOTHING
    RETURNING lease_id
), s AS (
    SELECT s.*,
           CASE WHEN s.fee_cents > 0
                THEN now() + coalesce(make_interval(secs => nullif(current_setting(
                         'slotrush.payment_window_seconds', true), '')::float8),
                     make_interval(mins => h.payment_window_minutes)) END AS expires
    FROM schedules s JOIN hospitals h ON h.id = s.hospital_id
    WHERE s.hospital_id IN (SELECT hospital_id FROM r) AND s.id IN (SELECT schedule_id FROM r)
      AND s.suspended_at IS NULL
    FOR KEY SHARE OF s
), b AS (
    INSERT INTO bookings (schedule_id, patient_id, hospital_id, department_id, doctor_id,
                          visit_date, period, number, verification_code, status, fee_cents,
                          hold_expires_at, request_id, idempotency_key)
    SELECT s.id, r.patient_id, s.hospital_id, s.department_id, s.doctor_id, s.visit_date,
           s.period, r.number, r.verification_code,
           CASE WHEN s.expires IS NULL THEN 'booked' ELSE 'pending_payment' END, s.fee_cents,
           s.expires, r.lease_id, r.idempotency_key
    FROM r JOIN claimed USING (lease_id)
    JOIN s ON s.hospital_id = r.hospital_id AND s.id = r.schedule_id
    -- The number exists: a HIS sync may have taken it off after Redis offered it.
    JOIN schedule_numbers sn ON sn.hospital_id = s.hospital_id AND sn.schedule_id = s.id
                            AND sn.number = r.number
    WHERE NOT EXISTS (SELECT 1 FROM blacklist bl
                      WHERE bl.hospital_id = s.hospital_id AND bl.patient_id = r.patient_id
                        AND bl.until > now())
    ON CONFLICT DO NOTHING
    RETURNING *
), n AS (
    UPDATE schedule_numbers n SET booking_id = b.id FROM b
    WHERE n.hospital_id = b.hospital_id AND n.schedule_id = b.schedule_id
      AND n.number = b.number
)
SELECT * FROM b;

-- name: get_booking
-- Crosses hospitals: a booking by its id alone, as the API names it.
SELECT * FROM bookings WHERE id = $1;

-- name: get_booking_by_request
SELECT * FROM bookings WHERE hospital_id = $1 AND request_id = $2;

-- name: get_booking_by_idempotency_key
-- A key is the patient's at every hospital (API.md v1), so this one lookup crosses them; the
-- patient's bookings are few (bookings_patient).
SELECT * FROM bookings WHERE patient_id = $1 AND idempotency_key = $2
ORDER BY created_at LIMIT 1;

-- name: list_patient_bookings
-- One page of a patient's bookings, newest first, before the id $2.
-- Crosses hospitals: the patient's own bookings, wherever they are.
SELECT * FROM bookings
WHERE patient_id = $1 AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3;

-- name: audit_schedules
-- Every hospital's schedules ($1 NULL, the platform), or one hospital's.
-- Crosses hospitals when $1 is NULL: the platform's audit.
SELECT s.id, s.capacity,
       count(b.id) AS booked
FROM schedules s
LEFT JOIN bookings b ON b.hospital_id = s.hospital_id AND b.schedule_id = s.id AND b.held
WHERE $1::text IS NULL OR s.hospital_id = $1
GROUP BY s.hospital_id, s.id
ORDER BY s.id;

-- name: audit_duplicates
-- Every hospital's bookings ($1 NULL, the platform), or one hospital's.
-- Crosses hospitals when $1 is NULL: the platform's audit.
WITH holding AS (
    SELECT * FROM bookings WHERE held AND ($1::text IS NULL OR hospital_id = $1)
)
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM holding
        GROUP BY schedule_id, number HAVING count(*) > 1) d) AS duplicate_numbers,
    (SELECT count(*) FROM (SELECT 1 FROM holding
        GROUP BY schedule_id, patient_id HAVING count(*) > 1) d) AS duplicate_patients,
    (SELECT count(*) FROM (
        SELECT 1 FROM holding b LEFT JOIN hospitals h ON h.id = b.hospital_id
        GROUP BY b.patient_id, b.hospital_id, b.visit_date, h.max_per_day
        HAVING count(*) > coalesce(h.max_per_day, 2)) d)
    + (SELECT count(*) FROM (
        SELECT 1 FROM holding b LEFT JOIN hospitals h ON h.id = b.hospital_id
        GROUP BY b.patient_id, b.hospital_id, b.visit_date, b.department_id,
                 h.max_per_department_per_day
        HAVING count(*) > coalesce(h.max_per_department_per_day, 1)) d) AS limit_violations;
