-- Payments (API.md 1.1): a booking's checkouts at a provider, the money ledger of what was
-- charged and refunded (each movement with the provider's reference), and the refunds owed
-- until the provider confirms them.

-- One row per checkout asked of a provider. At most one is pending per booking, which makes
-- asking again idempotent while it is; `status` only moves forward: pending -> paid |
-- declined, paid -> refunding -> refunded.
CREATE TABLE payments (
    hospital_id  text NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    booking_id   bigint NOT NULL,
    provider     text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    status       text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'paid', 'declined', 'refunding', 'refunded')),
    -- The provider's: its checkout, where the patient pays it, and the money it took.
    checkout_ref text,
    checkout_url text,
    charge_ref   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, id),
    FOREIGN KEY (hospital_id, booking_id) REFERENCES bookings (hospital_id, id)
);
CREATE UNIQUE INDEX payments_pending ON payments (hospital_id, booking_id)
    WHERE status = 'pending';
CREATE INDEX payments_booking ON payments (hospital_id, booking_id);

-- The money ledger: what moved, never changed once written. A payment has one charge and at
-- most one refund (the key), so nothing is charged or refunded twice (invariant 8).
CREATE TABLE money_movements (
    hospital_id  text NOT NULL,
    payment_id   bigint NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('charge', 'refund')),
    booking_id   bigint NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    provider_ref text NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, payment_id, kind),
    FOREIGN KEY (hospital_id, payment_id) REFERENCES payments (hospital_id, id)
);
CREATE INDEX money_movements_booking ON money_movements (hospital_id, booking_id);

-- Refunds owed: written in the transaction that makes a charge one to give back, retried by
-- the refund_payments job until the provider confirms (confirmed_at, and its movement).
CREATE TABLE refunds (
    hospital_id     text NOT NULL,
    payment_id      bigint NOT NULL,
    booking_id      bigint NOT NULL,
    amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    confirmed_at    timestamptz,
    PRIMARY KEY (hospital_id, payment_id),
    FOREIGN KEY (hospital_id, payment_id) REFERENCES payments (hospital_id, id)
);
CREATE INDEX refunds_due ON refunds (next_attempt_at) WHERE confirmed_at IS NULL;

-- The booking's money as its patient sees it (Booking.payment): its latest payment's, kept in
-- the transaction of every change to that payment (money_violations checks they agree).
ALTER TABLE bookings
    ADD COLUMN payment_status text NOT NULL DEFAULT 'none' CHECK (payment_status IN (
        'none', 'pending', 'paid', 'refunding', 'refunded', 'failed')),
    ADD COLUMN payment_provider text,
    ADD COLUMN payment_ref text;
