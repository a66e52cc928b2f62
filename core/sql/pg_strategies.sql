-- Named queries of the PostgreSQL strategies (see strategies/pg_*.py).

-- name: lock_schedule
-- Whether the schedule is suspended (closed to bookings), holding its row until the end.
SELECT suspended_at IS NOT NULL FROM schedules WHERE hospital_id = $1 AND id = $2 FOR UPDATE;

-- name: share_schedule
-- Whether the schedule is suspended, holding a key share of its row until the end: a
-- suspension (which locks the row for update) waits for this transaction, or went first.
SELECT suspended_at IS NOT NULL FROM schedules WHERE hospital_id = $1 AND id = $2 FOR KEY SHARE;

-- name: take_lowest_free
-- Under the schedule lock (or a matching version): bump the version and answer the lowest
-- free number, or no row when none is left. A fresh statement, so it sees the last commit.
UPDATE schedules SET version = version + 1
WHERE hospital_id = $1 AND id = $2
  AND ($3::bigint IS NULL OR version = $3)
  AND EXISTS (SELECT 1 FROM schedule_numbers
              WHERE hospital_id = $1 AND schedule_id = $2 AND booking_id IS NULL)
RETURNING (SELECT min(number) FROM schedule_numbers
           WHERE hospital_id = $1 AND schedule_id = $2 AND booking_id IS NULL) AS number;

-- name: read_version_and_free
-- pg-optimistic reads without locking: the version, whether the schedule is suspended, and
-- the lowest free number, one snapshot.
SELECT s.version, s.suspended_at IS NOT NULL AS suspended,
       (SELECT min(n.number) FROM schedule_numbers n
         WHERE n.hospital_id = s.hospital_id AND n.schedule_id = s.id
           AND n.booking_id IS NULL) AS number
FROM schedules s WHERE s.hospital_id = $1 AND s.id = $2;

-- name: bump_version
UPDATE schedules SET version = version + 1 WHERE hospital_id = $1 AND id = $2;

-- name: claim_free_number
-- pg-skip-locked: lock the lowest free number nobody else is claiming right now.
SELECT number FROM schedule_numbers
WHERE hospital_id = $1 AND schedule_id = $2 AND booking_id IS NULL
ORDER BY number
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: claim_free_number_waiting
-- The fallback when every free number is being claimed: wait for the claimers, then take
-- what they left (a claimer that rolled back leaves its number free).
SELECT number FROM schedule_numbers
WHERE hospital_id = $1 AND schedule_id = $2 AND booking_id IS NULL
ORDER BY number
LIMIT 1
FOR UPDATE;

-- name: lock_batch
-- pg-batched: the day locks of every patient in a batch ($4) of one schedule ($1, at
-- hospital $2 on date $3), in one globally sorted order, then the schedule's row: the order
-- lock_patient_day sets, so two batches (or a batch and a cancel) never wait on each other
-- in a circle. The row lock sits above the join, so it comes after the last day lock.
-- Answers whether the schedule is suspended (closed to bookings).
SELECT s.suspended_at IS NOT NULL
FROM schedules s,
     (SELECT count(pg_advisory_xact_lock(day.key)) AS held
      FROM (SELECT DISTINCT hashtextextended(p || '/' || $2 || '/' || $3::date::text, 0) AS key
            FROM unnest($4::text[]) AS p
            ORDER BY key) AS day) AS days
WHERE s.hospital_id = $2 AND s.id = $1
FOR UPDATE OF s;

-- name: book_batch
-- pg-batched, under lock_batch: judge every request of one schedule ($1, at hospital $2,
-- department $3, date $4) by the rules of patient_day_check, give each patient's first
-- admissible request the lowest free number left, in arrival order, and write those
-- bookings. $5..$8 per request in arrival order: patient, request id, Idempotency-Key,
-- verification code. One row per request, in that order: the refusal by a rule, the number
-- offered, and the booking's columns when it was written.
WITH rules AS (
    SELECT coalesce(h.max_per_day, 2) AS max_per_day,
           coalesce(h.max_per_department_per_day, 1) AS max_per_department_per_day
    FROM (SELECT 1) AS one LEFT JOIN hospitals h ON h.id = $2
), schedule AS (
    -- What each booking copies, and its state and hold as insert_booking (ledger.sql) sets them.
    SELECT s.doctor_id, s.period, s.fee_cents,
           CASE WHEN s.fee_cents > 0 THEN 'pending_payment' ELSE 'booked' END AS status,
           CASE WHEN s.fee_cents > 0
                THEN now() + coalesce(make_interval(secs => nullif(current_setting(
                         'slotrush.payment_window_seconds', true), '')::float8),
                     make_interval(mins => h.payment_window_minutes)) END AS expires
    FROM schedules s JOIN hospitals h ON h.id = s.hospital_id
    WHERE s.hospital_id = $2 AND s.id = $1
), request AS (
    SELECT * FROM unnest($5::text[], $6::uuid[], $7::text[], $8::text[]) WITH ORDINALITY
        AS r(patient_id, request_id, idempotency_key, verification_code, arrival)
), judged AS MATERIALIZED (  -- judged once, though read by a window
    SELECT r.*, CASE
        WHEN bl.patient_id IS NOT NULL THEN 'blacklisted'
        WHEN day.here THEN 'already_booked'
        WHEN day.booked >= rules.max_per_day THEN 'daily_limit'
        WHEN day.in_department >= rules.max_per_department_per_day THEN 'department_limit'
        -- A key already written would make the insert skip the row and leave a gap.
        WHEN reused.key THEN 'idempotency_conflict'
    END AS refusal
    FROM request r
    CROSS JOIN rules
    LEFT JOIN blacklist bl
        ON bl.hospital_id = $2 AND bl.patient_id = r.patient_id AND bl.until > now()
    -- Bookings are read per request and by patient at this hospital (the date is a filter,
    -- not an index condition): a patient holds few, however stale the statistics of a day
    -- that a crowd is filling are.
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE b.visit_date = $4) AS booked,
               count(*) FILTER (WHERE b.visit_date = $4 AND b.department_id = $3)
                   AS in_department,
               coalesce(bool_or(b.schedule_id = $1), false) AS here
        FROM bookings b
        WHERE b.hospital_id = $2 AND b.patient_id = r.patient_id AND b.held
    ) AS day
    LEFT JOIN LATERAL (
        SELECT true AS key FROM bookings b
        WHERE b.hospital_id = $2 AND b.patient_id = r.patient_id
          AND b.idempotency_key = r.idempotency_key
        LIMIT 1
    ) AS reused ON true
), lined AS (
    -- Each patient's first request that passed the rules stands in line, by arrival.
    SELECT j.*, j.refusal IS NULL AND row_number() OVER (
               PARTITION BY j.patient_id, j.refusal IS NULL ORDER BY j.arrival) = 1 AS admitted
    FROM judged j
), offered AS (
    -- The n-th in line gets the n-th lowest free number; past the last free one, none.
    SELECT l.*, CASE WHEN l.admitted THEN
               (ARRAY(SELECT n.number FROM schedule_numbers n
                      WHERE n.hospital_id = $2 AND n.schedule_id = $1
                        AND n.booking_id IS NULL
                      ORDER BY n.number LIMIT cardinality($5::text[])))
               [count(*) FILTER (WHERE l.admitted) OVER (ORDER BY l.arrival)]
           END AS number
    FROM lined l
), written AS (
    INSERT INTO bookings (schedule_id, patient_id, hospital_id, department_id, doctor_id,
                          visit_date, period, number, verification_code, status, fee_cents,
                          hold_expires_at, request_id, idempotency_key)
    SELECT $1, o.patient_id, $2, $3, s.doctor_id, $4, s.period, o.number, o.verification_code,
           s.status, s.fee_cents, s.expires, o.request_id, o.idempotency_key
    FROM offered o CROSS JOIN schedule s
    WHERE o.number IS NOT NULL
    -- Concurrent batches of other schedules meet in the Idempotency-Key index only: one
    -- order for all makes any wait there one-way.
    ORDER BY o.patient_id, o.idempotency_key
    ON CONFLICT DO NOTHING
    RETURNING *
), held AS (
    -- Joined on the written rows' own key, not on $1 and $2: those let a generic plan scan
    -- every number of the schedule for each row written (a crowd's statistics are stale).
    UPDATE schedule_numbers n SET booking_id = w.id FROM written w
    WHERE n.hospital_id = w.hospital_id AND n.schedule_id = w.schedule_id
      AND n.number = w.number
)
SELECT o.refusal, o.number AS offered, w.*
FROM offered o
LEFT JOIN written w ON w.request_id = o.request_id
ORDER BY o.arrival;
