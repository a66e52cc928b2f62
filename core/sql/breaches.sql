-- Named queries of automatic blacklisting (core/blacklisting.py): a hospital's rules, the
-- breaches counted against them, the whitelist and the blacklist as its staff read it.

-- name: get_blacklist_rules
SELECT max_cancellations, max_no_shows, window_days, ban_days, late_cancel_minutes
FROM blacklist_rules WHERE hospital_id = $1;

-- name: put_blacklist_rules
INSERT INTO blacklist_rules (hospital_id, max_cancellations, max_no_shows, window_days,
                             ban_days, late_cancel_minutes)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (hospital_id) DO UPDATE SET
    max_cancellations = EXCLUDED.max_cancellations, max_no_shows = EXCLUDED.max_no_shows,
    window_days = EXCLUDED.window_days, ban_days = EXCLUDED.ban_days,
    late_cancel_minutes = EXCLUDED.late_cancel_minutes;

-- name: delete_blacklist_rules
DELETE FROM blacklist_rules WHERE hospital_id = $1;

-- name: record_breaches
-- The bookings $2 of hospital $1 that ended as breaches ($3: 'cancellation' or 'no_show'),
-- once each, while the hospital has rules; a cancel later than late_cancel_minutes before
-- the visit starts counts double. Answers the patients who breached.
INSERT INTO breaches (hospital_id, booking_id, patient_id, kind, weight)
SELECT b.hospital_id, b.id, b.patient_id, late.kind, CASE late.kind WHEN 'late_cancellation'
                                                       THEN 2 ELSE 1 END
FROM bookings b
JOIN blacklist_rules r ON r.hospital_id = b.hospital_id
JOIN hospitals h ON h.id = b.hospital_id
CROSS JOIN LATERAL (SELECT CASE
    WHEN $3 = 'cancellation' AND b.cancelled_at > visit_starts_at(b.visit_date, b.period,
            h.timezone) - make_interval(mins => r.late_cancel_minutes)
    THEN 'late_cancellation' ELSE $3 END AS kind) AS late
WHERE b.hospital_id = $1 AND b.id = ANY($2::bigint[])
ON CONFLICT (hospital_id, booking_id) DO NOTHING
RETURNING patient_id;

-- name: lock_breaching_patients
-- One evaluation of a patient's breaches at a time (a cancel and a settlement of another
-- date may end their bookings at once), taken in one sorted order so two never deadlock.
SELECT pg_advisory_xact_lock(hashtextextended('breach/' || $1 || '/' || p, 0))
FROM (SELECT DISTINCT p FROM unnest($2::text[]) AS p ORDER BY p) AS sorted;

-- name: ban_breaching_patients
-- Patients $2 of hospital $1 whose unspent breaches within the window reach a count of the
-- rules, not whitelisted: blacklisted for ban_days from now (an entry in force that lasts
-- longer is kept), their breaches spent on this ban. Answers the new entries.
WITH counts AS (
    SELECT br.patient_id,
           coalesce(sum(br.weight) FILTER (WHERE br.kind <> 'no_show'), 0) AS cancellations,
           count(*) FILTER (WHERE br.kind = 'no_show') AS no_shows
    FROM breaches br
    JOIN blacklist_rules r ON r.hospital_id = br.hospital_id
    WHERE br.hospital_id = $1 AND br.patient_id = ANY($2::text[]) AND br.banned_since IS NULL
      AND br.occurred_at > now() - make_interval(days => r.window_days)
    GROUP BY br.patient_id
), crossing AS (
    SELECT c.patient_id, now() + make_interval(days => r.ban_days) AS until
    FROM counts c
    JOIN blacklist_rules r ON r.hospital_id = $1
    WHERE (c.cancellations >= r.max_cancellations OR c.no_shows >= r.max_no_shows)
      AND NOT EXISTS (SELECT 1 FROM whitelist w
                      WHERE w.hospital_id = $1 AND w.patient_id = c.patient_id)
), banned AS (
    INSERT INTO blacklist (hospital_id, patient_id, until, source, since)
    SELECT $1, patient_id, until, 'automatic', now() FROM crossing
    ON CONFLICT (hospital_id, patient_id) DO UPDATE
        SET until = EXCLUDED.until, source = EXCLUDED.source, since = EXCLUDED.since
        WHERE blacklist.until < EXCLUDED.until
    RETURNING patient_id, until, since
), spent AS (
    UPDATE breaches br SET banned_since = banned.since
    FROM banned, blacklist_rules r
    WHERE br.hospital_id = $1 AND r.hospital_id = $1 AND br.patient_id = banned.patient_id
      AND br.banned_since IS NULL
      AND br.occurred_at > now() - make_interval(days => r.window_days)
)
SELECT patient_id, until, since FROM banned;

-- name: put_whitelist
INSERT INTO whitelist (hospital_id, patient_id) VALUES ($1, $2)
ON CONFLICT (hospital_id, patient_id) DO UPDATE SET created_at = whitelist.created_at
RETURNING created_at;

-- name: delete_whitelist
DELETE FROM whitelist WHERE hospital_id = $1 AND patient_id = $2;

-- name: list_blacklist
-- Entries in force after patient $2 (NULL: from the start), in patient order, each with the
-- breaches behind an automatic one.
SELECT bl.patient_id, bl.until, bl.source, bl.since,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                     'booking_id', br.booking_id::text, 'kind', br.kind,
                     'weight', br.weight, 'occurred_at', br.occurred_at)
                     ORDER BY br.occurred_at, br.booking_id)
                 FROM breaches br
                 WHERE br.hospital_id = bl.hospital_id AND br.patient_id = bl.patient_id
                   AND br.banned_since = bl.since AND bl.source = 'automatic'),
                '[]'::jsonb) AS events
FROM blacklist bl
WHERE bl.hospital_id = $1 AND bl.until > now() AND ($2::text IS NULL OR bl.patient_id > $2)
ORDER BY bl.patient_id
LIMIT $3;
