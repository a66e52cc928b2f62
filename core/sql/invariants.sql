-- Named queries of the run checks (loadtest/client/lifecycle.py): invariants 9 and 10 of
-- API.md 1.1 and the money totals, over hospital $1 (every hospital: NULL). Invariant 8 per
-- booking is money_violations (payments.sql). Each answers the rows that break it, so an
-- empty answer is a pass.

-- name: lapse_violations
-- Invariant 9: a hold still held more than 5 seconds after its expiry, or one that expired
-- later than that ($2: the slack in seconds, 5 by the contract).
SELECT b.hospital_id, b.id, b.status, b.hold_expires_at, b.expired_at
FROM bookings b
WHERE ($1::text IS NULL OR b.hospital_id = $1)
  AND b.hold_expires_at IS NOT NULL
  AND ((b.status = 'pending_payment'
        AND b.hold_expires_at < now() - make_interval(secs => $2))
    OR (b.status = 'expired'
        AND b.expired_at > b.hold_expires_at + make_interval(secs => $2)));

-- name: settlement_violations
-- Invariant 10: a settlement whose count disagrees with the no-shows of its date (a booking
-- settled twice or not counted), a breach whose booking did not end the way it says, and an
-- automatic ban that no breach was spent on.
SELECT s.hospital_id, 'settlement ' || s.visit_date || ' counts ' || s.no_shows
       || ' no-shows, the bookings ' || count(b.id) AS problem
FROM settlements s
LEFT JOIN bookings b ON b.hospital_id = s.hospital_id AND b.visit_date = s.visit_date
                    AND b.status = 'no_show'
WHERE $1::text IS NULL OR s.hospital_id = $1
GROUP BY s.hospital_id, s.visit_date, s.no_shows
HAVING count(b.id) <> s.no_shows
UNION ALL
SELECT br.hospital_id, 'breach ' || br.kind || ' of booking ' || b.id || ' which is '
       || b.status || coalesce(' by ' || b.cancelled_by, '')
FROM breaches br
JOIN bookings b ON b.hospital_id = br.hospital_id AND b.id = br.booking_id
WHERE ($1::text IS NULL OR br.hospital_id = $1)
  AND NOT ((br.kind = 'no_show' AND b.status = 'no_show')
        OR (br.kind <> 'no_show' AND b.status = 'cancelled' AND b.cancelled_by = 'patient'))
UNION ALL
SELECT bl.hospital_id, 'automatic ban of ' || bl.patient_id || ' since ' || bl.since
       || ' has no breach spent on it'
FROM blacklist bl
WHERE ($1::text IS NULL OR bl.hospital_id = $1) AND bl.source = 'automatic'
  AND NOT EXISTS (SELECT 1 FROM breaches br
                  WHERE br.hospital_id = bl.hospital_id AND br.patient_id = bl.patient_id
                    AND br.banned_since = bl.since);

-- name: money_totals
-- The money of every booking at once: what was charged, refunded and is still owed back,
-- against the fees of the bookings that keep their money. Balanced, charged - refunded -
-- owed equals kept_fees.
SELECT
    coalesce((SELECT sum(m.amount_cents) FROM money_movements m
              WHERE ($1::text IS NULL OR m.hospital_id = $1) AND m.kind = 'charge'), 0)
        AS charged,
    coalesce((SELECT sum(m.amount_cents) FROM money_movements m
              WHERE ($1::text IS NULL OR m.hospital_id = $1) AND m.kind = 'refund'), 0)
        AS refunded,
    coalesce((SELECT sum(r.amount_cents) FROM refunds r
              WHERE ($1::text IS NULL OR r.hospital_id = $1) AND r.confirmed_at IS NULL), 0)
        AS owed,
    coalesce((SELECT sum(b.fee_cents) FROM bookings b
              WHERE ($1::text IS NULL OR b.hospital_id = $1)
                AND b.status IN ('booked', 'attended') AND b.fee_cents > 0), 0) AS kept_fees,
    (SELECT count(*) FROM money_movements m
     WHERE ($1::text IS NULL OR m.hospital_id = $1) AND m.kind = 'charge') AS charges,
    (SELECT count(*) FROM money_movements m
     WHERE ($1::text IS NULL OR m.hospital_id = $1) AND m.kind = 'refund') AS refunds;
