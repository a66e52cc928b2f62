-- Named queries of the notifications outbox (core/notifications/): written in the
-- transaction of the change, delivered at least once to the hospital's webhook_url.

-- name: notify_bookings
-- One notification of kind $3 per booking $2 of hospital $1, its dedupe id "$3/<booking>";
-- nothing for a hospital without a webhook_url, nothing twice for one event.
INSERT INTO notifications (hospital_id, dedupe_id, kind, payload)
SELECT b.hospital_id, $3 || '/' || b.id, $3,
       jsonb_build_object('booking', notification_booking(b)) || $4::jsonb
FROM bookings b
JOIN hospitals h ON h.id = b.hospital_id
WHERE b.hospital_id = $1 AND b.id = ANY($2::bigint[]) AND h.webhook_url IS NOT NULL
ON CONFLICT (hospital_id, dedupe_id) DO NOTHING;

-- name: notify_patient
-- One notification about a patient ($3 kind, $4 dedupe id, $5 payload) at hospital $1.
INSERT INTO notifications (hospital_id, dedupe_id, kind, payload)
SELECT h.id, $4, $3, jsonb_build_object('patient_id', $2::text) || $5::jsonb
FROM hospitals h
WHERE h.id = $1 AND h.webhook_url IS NOT NULL
ON CONFLICT (hospital_id, dedupe_id) DO NOTHING;

-- name: write_reminders
-- Crosses hospitals: the reminder job's sweep. Each booked booking whose visit starts within
-- $1 hours gets one reminder, at hospitals with a webhook_url (read per hospital through
-- the index of held bookings by date).
INSERT INTO notifications (hospital_id, dedupe_id, kind, payload)
SELECT b.hospital_id, 'reminder/' || b.id, 'reminder',
       jsonb_build_object('booking', notification_booking(b),
                          'visit_starts_at', visit_starts_at(b.visit_date, b.period, h.timezone))
FROM hospitals h
JOIN bookings b ON b.hospital_id = h.id
WHERE h.webhook_url IS NOT NULL AND b.held AND b.status = 'booked'
  AND b.visit_date BETWEEN (now() AT TIME ZONE h.timezone)::date
                       AND ((now() + make_interval(hours => $1)) AT TIME ZONE h.timezone)::date
  AND visit_starts_at(b.visit_date, b.period, h.timezone)
      BETWEEN now() AND now() + make_interval(hours => $1)
ON CONFLICT (hospital_id, dedupe_id) DO NOTHING;

-- name: claim_notifications
-- Crosses hospitals: the delivery job's sweep. Up to $1 due notifications, claimed for $2
-- seconds (a deliverer that dies leaves them due again then) and counted as an attempt;
-- ones another deliverer holds are skipped.
WITH due AS (
    SELECT hospital_id, id FROM notifications
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE notifications n
SET attempts = n.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
FROM due, hospitals h
WHERE n.hospital_id = due.hospital_id AND n.id = due.id AND h.id = n.hospital_id
RETURNING n.hospital_id, n.id, n.dedupe_id, n.kind, n.payload::text AS payload, n.attempts,
          n.created_at, h.webhook_url, h.webhook_secret;

-- name: notifications_delivered
UPDATE notifications n SET status = 'delivered', delivered_at = now(), last_error = NULL
FROM unnest($1::text[], $2::bigint[]) AS d(hospital_id, id)
WHERE n.hospital_id = d.hospital_id AND n.id = d.id AND n.status = 'pending';

-- name: notifications_failed
-- Failed attempts: due again after their backoff ($3 seconds each), or dead once they have
-- had $5 attempts.
UPDATE notifications n
SET last_error = f.error,
    status = CASE WHEN n.attempts >= $5 THEN 'dead' ELSE 'pending' END,
    next_attempt_at = now() + make_interval(secs => f.backoff)
FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::text[])
     AS f(hospital_id, id, backoff, error)
WHERE n.hospital_id = f.hospital_id AND n.id = f.id AND n.status = 'pending';

-- name: list_notifications
-- A hospital's notifications after id $3 (NULL: from the start), in id order, of status $2
-- (NULL: every status).
SELECT id, dedupe_id, kind, payload::text AS payload, status, attempts, next_attempt_at,
       last_error, created_at, delivered_at
FROM notifications
WHERE hospital_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::bigint IS NULL OR id > $3)
ORDER BY id
LIMIT $4;

-- name: retry_notification
-- An undelivered notification of the hospital due now: a dead one back in the queue with
-- its attempts counted afresh, a pending one without waiting for its backoff.
UPDATE notifications
SET attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END,
    status = 'pending', next_attempt_at = now()
WHERE hospital_id = $1 AND id = $2 AND status IN ('pending', 'dead')
RETURNING id;

-- name: get_webhook_secret
SELECT webhook_secret FROM hospitals WHERE id = $1 AND deleted_at IS NULL;

-- name: rotate_webhook_secret
UPDATE hospitals SET webhook_secret = $2 WHERE id = $1 AND deleted_at IS NULL
RETURNING webhook_secret;
