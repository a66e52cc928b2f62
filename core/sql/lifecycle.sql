-- Named queries of the booking lifecycle's transitions (core/lifecycle/, API.md 1.1). Each
-- changes a booking's status only from the state it leaves (`WHERE status = ...`), so a
-- transition that runs twice, or races another one, happens once per booking. A transition
-- that ends a hold frees the booking's number in the same statement.

-- name: cancel_by_patient
WITH b AS (
    UPDATE bookings SET status = 'cancelled', cancelled_at = now(), cancelled_by = 'patient'
    WHERE hospital_id = $1 AND id = $2 AND status IN ('pending_payment', 'booked')
    RETURNING *
), n AS (
    UPDATE schedule_numbers n SET booking_id = NULL FROM b
    WHERE n.hospital_id = b.hospital_id AND n.booking_id = b.id
)
SELECT * FROM b;

-- name: expire_holds
-- Up to $1 holds whose payment window has passed, oldest first; holds another sweep (or a
-- cancel, a payment) has locked are left to it.
WITH due AS (
    SELECT hospital_id, id FROM bookings
    WHERE status = 'pending_payment' AND hold_expires_at <= now()
    ORDER BY hold_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), b AS (
    UPDATE bookings SET status = 'expired', expired_at = now()
    FROM due
    WHERE bookings.hospital_id = due.hospital_id AND bookings.id = due.id
      AND bookings.status = 'pending_payment'
    RETURNING bookings.*
), n AS (
    UPDATE schedule_numbers n SET booking_id = NULL FROM b
    WHERE n.hospital_id = b.hospital_id AND n.booking_id = b.id
)
SELECT * FROM b;

-- name: lock_schedule_to_suspend
-- The schedule's row, locked against every booking's key share (see insert_booking).
SELECT id, hospital_id, visit_date FROM schedules
WHERE hospital_id = $1 AND id = $2
FOR UPDATE;

-- name: suspend_schedule
-- Once: a repeated suspension keeps the first one's time and reason. The version moves, so
-- pg-optimistic's readers of the open schedule retry and find it suspended.
UPDATE schedules SET suspended_at = now(), suspend_reason = $3, version = version + 1
WHERE hospital_id = $1 AND id = $2 AND suspended_at IS NULL;

-- name: cancel_by_hospital
WITH b AS (
    UPDATE bookings SET status = 'cancelled', cancelled_at = now(), cancelled_by = 'hospital'
    WHERE hospital_id = $1 AND schedule_id = $2 AND status IN ('pending_payment', 'booked')
    RETURNING *
), n AS (
    UPDATE schedule_numbers n SET booking_id = NULL FROM b
    WHERE n.hospital_id = b.hospital_id AND n.booking_id = b.id
)
SELECT * FROM b;

-- name: check_in
-- The hospital's booked booking of the day with this verification code, now attended. A
-- concurrent check-in of the same code waits for this one and then finds it used.
UPDATE bookings SET status = 'attended', attended_at = now()
WHERE hospital_id = $1 AND id = (SELECT id FROM bookings
            WHERE hospital_id = $1 AND visit_date = $2 AND verification_code = $3
              AND status = 'booked'
            ORDER BY id
            LIMIT 1
            FOR UPDATE)
  AND status = 'booked'
RETURNING *;

-- name: check_in_retry_after
-- Seconds until this staff member may try codes again at this hospital, or no row: $3
-- failures within a window of $4 seconds are the most allowed.
SELECT greatest(1, ceil(extract(epoch FROM
           window_start + make_interval(secs => $4) - now())))::int AS retry_after
FROM check_in_failures
WHERE hospital_id = $1 AND staff = $2 AND failures >= $3
  AND window_start > now() - make_interval(secs => $4);

-- name: count_check_in_failure
INSERT INTO check_in_failures (hospital_id, staff, window_start, failures)
VALUES ($1, $2, now(), 1)
ON CONFLICT (hospital_id, staff) DO UPDATE SET
    failures = CASE WHEN check_in_failures.window_start > now() - make_interval(secs => $3)
                    THEN check_in_failures.failures + 1 ELSE 1 END,
    window_start = CASE WHEN check_in_failures.window_start > now() - make_interval(secs => $3)
                        THEN check_in_failures.window_start ELSE now() END;

-- name: lock_settlement
-- One settler of a hospital's date at a time: another one waits and then finds less to do.
SELECT pg_advisory_xact_lock(hashtextextended('settle/' || $1 || '/' || $2::date::text, 0));

-- name: begin_settlement
INSERT INTO settlements (hospital_id, visit_date) VALUES ($1, $2)
ON CONFLICT (hospital_id, visit_date) DO NOTHING;

-- name: settle_no_shows
-- Up to $3 of the date's bookings still booked become no-shows, counted in the settlement in
-- the same statement. A cancel holding one of them is waited for (and then it is skipped).
WITH due AS (
    SELECT id FROM bookings
    WHERE hospital_id = $1 AND visit_date = $2 AND status = 'booked'
    ORDER BY id
    LIMIT $3
    FOR UPDATE
), b AS (
    UPDATE bookings SET status = 'no_show', settled_at = now()
    FROM due
    WHERE bookings.hospital_id = $1 AND bookings.id = due.id AND bookings.status = 'booked'
    RETURNING bookings.*
), counted AS (
    UPDATE settlements SET no_shows = no_shows + (SELECT count(*) FROM b)
    WHERE hospital_id = $1 AND visit_date = $2
)
SELECT * FROM b;

-- name: finish_settlement
UPDATE settlements SET finished_at = coalesce(finished_at, now())
WHERE hospital_id = $1 AND visit_date = $2
RETURNING *;

-- name: settlements_due
-- Each hospital's visit dates with bookings still booked once the hospital's clock has
-- passed settle_at on that date (read through the settlement index, per hospital).
SELECT h.id AS hospital_id, due.visit_date
FROM hospitals h
CROSS JOIN LATERAL (
    SELECT DISTINCT b.visit_date FROM bookings b
    WHERE b.hospital_id = h.id AND b.status = 'booked'
      AND b.visit_date <= ((now() AT TIME ZONE h.timezone) - h.settle_at::interval)::date
) AS due
ORDER BY due.visit_date, h.id
LIMIT $1;
