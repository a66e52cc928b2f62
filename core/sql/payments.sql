-- Named queries of payments and the money ledger (core/payments/, API.md 1.1). A payment's
-- status only moves forward (`WHERE status = ...`), so a notice delivered twice, late or out
-- of order changes nothing twice; every change of a payment is followed, in its transaction,
-- by sync_booking_payment.

-- name: lock_booking_to_pay
SELECT * FROM bookings WHERE hospital_id = $1 AND id = $2 FOR UPDATE;

-- name: pending_payment_of_booking
SELECT * FROM payments WHERE hospital_id = $1 AND booking_id = $2 AND status = 'pending';

-- name: insert_payment
INSERT INTO payments (hospital_id, booking_id, provider, amount_cents)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: set_checkout
-- The provider's checkout, once known (asking it again answers the same one).
UPDATE payments SET checkout_ref = coalesce(checkout_ref, $3),
                    checkout_url = coalesce(checkout_url, $4), updated_at = now()
WHERE hospital_id = $1 AND id = $2
RETURNING *;

-- name: sync_booking_payment
-- The booking's payment as its patient sees it: its latest payment's (a declined one reads
-- as failed).
UPDATE bookings b SET
    payment_status = CASE p.status WHEN 'declined' THEN 'failed' ELSE p.status END,
    payment_provider = p.provider,
    payment_ref = p.checkout_ref
FROM (SELECT status, provider, checkout_ref FROM payments
      WHERE hospital_id = $1 AND booking_id = $2
      ORDER BY id DESC
      LIMIT 1) AS p
WHERE b.hospital_id = $1 AND b.id = $2
RETURNING b.*;

-- name: lock_payment
SELECT * FROM payments WHERE hospital_id = $1 AND id = $2 FOR UPDATE;

-- name: decline_payment
UPDATE payments SET status = 'declined', checkout_ref = coalesce(checkout_ref, $3),
                    updated_at = now()
WHERE hospital_id = $1 AND id = $2 AND status = 'pending'
RETURNING *;

-- name: charge_payment
-- The money taken: the payment is paid and the charge is in the ledger, in one statement.
WITH p AS (
    UPDATE payments SET status = 'paid', checkout_ref = coalesce(checkout_ref, $3),
                        charge_ref = $4, updated_at = now()
    WHERE hospital_id = $1 AND id = $2 AND status = 'pending'
    RETURNING *
)
INSERT INTO money_movements (hospital_id, payment_id, kind, booking_id, amount_cents,
                             provider_ref)
SELECT p.hospital_id, p.id, 'charge', p.booking_id, p.amount_cents,
       coalesce(p.charge_ref, p.checkout_ref) FROM p
RETURNING booking_id;

-- name: book_paid
-- A paid hold is booked; a booking that stopped holding (expired, cancelled) is left as is.
UPDATE bookings SET status = 'booked'
WHERE hospital_id = $1 AND id = $2 AND status = 'pending_payment'
RETURNING *;

-- name: owe_refunds
-- The paid payments of bookings that ended are owed back: a refund each, until confirmed.
WITH p AS (
    UPDATE payments SET status = 'refunding', updated_at = now()
    WHERE hospital_id = $1 AND booking_id = ANY($2::bigint[]) AND status = 'paid'
    RETURNING hospital_id, id, booking_id, amount_cents
)
INSERT INTO refunds (hospital_id, payment_id, booking_id, amount_cents)
SELECT p.hospital_id, p.id, p.booking_id, p.amount_cents FROM p
ON CONFLICT DO NOTHING
RETURNING booking_id;

-- name: claim_refunds_due
-- Up to $1 refunds due, claimed until their next attempt: $2 seconds later at least (longer
-- than a call to the provider may take), doubling with each attempt up to $3 seconds. A
-- process that dies mid-refund leaves its claim to lapse; the next attempt asks again with
-- the same key, which the provider answers with the same refund.
WITH due AS (
    SELECT hospital_id, payment_id FROM refunds
    WHERE confirmed_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE refunds r SET
    attempts = r.attempts + 1,
    next_attempt_at = now() + make_interval(
        secs => greatest($2, least($3, 2 ^ least(r.attempts, 16))))
FROM due
JOIN payments p ON p.hospital_id = due.hospital_id AND p.id = due.payment_id
WHERE r.hospital_id = due.hospital_id AND r.payment_id = due.payment_id
RETURNING r.hospital_id, r.payment_id, r.booking_id, r.amount_cents, r.attempts, p.provider,
          p.checkout_ref;

-- name: refund_failed
UPDATE refunds SET last_error = $3 WHERE hospital_id = $1 AND payment_id = $2;

-- name: confirm_refund
-- The provider gave the money back: the refund is confirmed and in the ledger, once.
WITH r AS (
    UPDATE refunds SET confirmed_at = now(), last_error = NULL
    WHERE hospital_id = $1 AND payment_id = $2 AND confirmed_at IS NULL
    RETURNING *
), m AS (
    INSERT INTO money_movements (hospital_id, payment_id, kind, booking_id, amount_cents,
                                 provider_ref)
    SELECT r.hospital_id, r.payment_id, 'refund', r.booking_id, r.amount_cents, $3 FROM r
)
UPDATE payments p SET status = 'refunded', updated_at = now()
FROM r
WHERE p.hospital_id = r.hospital_id AND p.id = r.payment_id
RETURNING p.booking_id;

-- name: money_violations
-- Invariant 8, per booking of hospital $1 (every hospital: NULL): charged minus refunded is
-- the fee while it is booked or attended, nothing while it is unpaid, and nothing once it
-- ended unattended and no refund is still owed; never more refunded than charged; and the
-- booking shows its latest payment's status.
WITH money AS (
    SELECT b.hospital_id, b.id, b.status, b.fee_cents, b.payment_status,
           coalesce(sum(m.amount_cents) FILTER (WHERE m.kind = 'charge'), 0) AS charged,
           coalesce(sum(m.amount_cents) FILTER (WHERE m.kind = 'refund'), 0) AS refunded,
           EXISTS (SELECT 1 FROM refunds r
                   WHERE r.hospital_id = b.hospital_id AND r.booking_id = b.id
                     AND r.confirmed_at IS NULL) AS refund_owed,
           (SELECT CASE p.status WHEN 'declined' THEN 'failed' ELSE p.status END
            FROM payments p WHERE p.hospital_id = b.hospital_id AND p.booking_id = b.id
            ORDER BY p.id DESC LIMIT 1) AS latest
    FROM bookings b
    LEFT JOIN money_movements m ON m.hospital_id = b.hospital_id AND m.booking_id = b.id
    WHERE $1::text IS NULL OR b.hospital_id = $1
    GROUP BY b.hospital_id, b.id
)
SELECT hospital_id, id, status, fee_cents, charged, refunded, refund_owed, payment_status
FROM money
WHERE refunded > charged
   OR (status IN ('booked', 'attended') AND charged - refunded <> fee_cents)
   OR (status = 'pending_payment' AND charged > 0)
   OR (status IN ('expired', 'cancelled', 'no_show') AND NOT refund_owed
       AND charged <> refunded)
   OR payment_status <> coalesce(latest, 'none');
