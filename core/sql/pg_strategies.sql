-- Named queries of the PostgreSQL strategies (see strategies/pg_*.py).

-- name: lock_schedule
SELECT version FROM schedules WHERE id = $1 FOR UPDATE;

-- name: take_lowest_free
-- Under the schedule lock (or a matching version): bump the version and answer the lowest
-- free number, or no row when none is left. A fresh statement, so it sees the last commit.
UPDATE schedules SET version = version + 1
WHERE id = $1
  AND ($2::bigint IS NULL OR version = $2)
  AND EXISTS (SELECT 1 FROM schedule_numbers WHERE schedule_id = $1 AND booking_id IS NULL)
RETURNING (SELECT min(number) FROM schedule_numbers
           WHERE schedule_id = $1 AND booking_id IS NULL) AS number;

-- name: read_version_and_free
-- pg-optimistic reads without locking: the version and the lowest free number, one snapshot.
SELECT s.version,
       (SELECT min(n.number) FROM schedule_numbers n
         WHERE n.schedule_id = s.id AND n.booking_id IS NULL) AS number
FROM schedules s WHERE s.id = $1;

-- name: bump_version
UPDATE schedules SET version = version + 1 WHERE id = $1;

-- name: claim_free_number
-- pg-skip-locked: lock the lowest free number nobody else is claiming right now.
SELECT number FROM schedule_numbers
WHERE schedule_id = $1 AND booking_id IS NULL
ORDER BY number
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: claim_free_number_waiting
-- The fallback when every free number is being claimed: wait for the claimers, then take
-- what they left (a claimer that rolled back leaves its number free).
SELECT number FROM schedule_numbers
WHERE schedule_id = $1 AND booking_id IS NULL
ORDER BY number
LIMIT 1
FOR UPDATE;
