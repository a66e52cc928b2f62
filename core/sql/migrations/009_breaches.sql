-- Automatic blacklisting and notifications (API.md 1.1, Hospital operations): a hospital's
-- blacklist rules, the breaches counted against them (a cancel by the patient, a late one
-- counting double, and a no-show), who is exempt (the whitelist), and the outbox of
-- notifications to the hospital's webhook_url.

-- When a session starts, as core.localtime.PERIOD_STARTS says (tests/test_breaches.py
-- compares them): late cancels and reminders count from it.
CREATE FUNCTION visit_starts_at(visit_date date, period text, timezone text)
RETURNS timestamptz LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (visit_date + CASE period WHEN 'am' THEN time '08:00'
                                     WHEN 'pm' THEN time '13:00'
                                     ELSE time '18:00' END) AT TIME ZONE timezone
$$;

-- A hospital without a row here blacklists no one by itself.
CREATE TABLE blacklist_rules (
    hospital_id         text PRIMARY KEY REFERENCES hospitals (id),
    max_cancellations   integer NOT NULL CHECK (max_cancellations >= 1),
    max_no_shows        integer NOT NULL CHECK (max_no_shows >= 1),
    window_days         integer NOT NULL CHECK (window_days BETWEEN 1 AND 3650),
    ban_days            integer NOT NULL CHECK (ban_days BETWEEN 1 AND 3650),
    late_cancel_minutes integer NOT NULL CHECK (late_cancel_minutes BETWEEN 0 AND 525600)
);

-- Who set an entry, and when it began (an automatic entry's breaches name that instant).
ALTER TABLE blacklist
    ADD COLUMN source text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'automatic')),
    ADD COLUMN since timestamptz NOT NULL DEFAULT now();

-- One breach per booking at most (a booking ends once): the key makes counting it
-- exactly-once whatever repeats (invariant 10). `banned_since` is the `since` of the
-- automatic entry it led to; a breach counts toward one ban only.
CREATE TABLE breaches (
    hospital_id  text NOT NULL,
    booking_id   bigint NOT NULL,
    patient_id   text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('cancellation', 'late_cancellation', 'no_show')),
    weight       integer NOT NULL CHECK (weight IN (1, 2)),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    banned_since timestamptz,
    PRIMARY KEY (hospital_id, booking_id),
    FOREIGN KEY (hospital_id, booking_id) REFERENCES bookings (hospital_id, id)
);
CREATE INDEX breaches_patient ON breaches (hospital_id, patient_id, occurred_at);

-- Patients a hospital never blacklists automatically.
CREATE TABLE whitelist (
    hospital_id text NOT NULL REFERENCES hospitals (id),
    patient_id  text NOT NULL CHECK (patient_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, patient_id)
);

-- What a webhook is signed with (HMAC-SHA256); 244 random bits until an administrator
-- rotates it.
ALTER TABLE hospitals ADD COLUMN webhook_secret text NOT NULL
    DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');

-- The notifications outbox: written in the transaction of the change, delivered at least
-- once by the deliver_notifications job. `dedupe_id` names the event (the receiver's
-- deduplication key, and ours: writing one event twice keeps the first).
CREATE TABLE notifications (
    hospital_id     text NOT NULL,
    id              bigserial,
    dedupe_id       text NOT NULL,
    kind            text NOT NULL CHECK (kind IN (
                        'confirmed', 'reminder', 'cancelled_by_hospital', 'refunded',
                        'blacklisted')),
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (hospital_id, id),
    UNIQUE (hospital_id, dedupe_id)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';

-- A booking as its notifications tell it.
CREATE FUNCTION notification_booking(b bookings) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'booking_id', b.id::text, 'patient_id', b.patient_id, 'schedule_id', b.schedule_id::text,
        'department_id', b.department_id, 'doctor_id', b.doctor_id,
        'visit_date', b.visit_date, 'period', b.period, 'number', b.number,
        'status', b.status)
$$;

-- "confirmed" when a booking becomes booked: written by every strategy's booking statement
-- (booked at once, a free schedule) and by a payment (pending_payment -> booked). A trigger,
-- because these statements are many, batched and on the hot path: one statement-level
-- insert per booking statement, and nothing for a hospital without a webhook_url.
CREATE FUNCTION notify_confirmed_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (hospital_id, dedupe_id, kind, payload)
    SELECT nb.hospital_id, 'confirmed/' || nb.id, 'confirmed',
           jsonb_build_object('booking', notification_booking(nb))
    FROM new_bookings nb
    JOIN hospitals h ON h.id = nb.hospital_id
    WHERE nb.status = 'booked' AND h.webhook_url IS NOT NULL
    ON CONFLICT (hospital_id, dedupe_id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE FUNCTION notify_confirmed_paid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (hospital_id, dedupe_id, kind, payload)
    SELECT nb.hospital_id, 'confirmed/' || nb.id, 'confirmed',
           jsonb_build_object('booking', notification_booking(nb))
    FROM new_bookings nb
    JOIN old_bookings ob ON ob.hospital_id = nb.hospital_id AND ob.id = nb.id
    JOIN hospitals h ON h.id = nb.hospital_id
    WHERE ob.status = 'pending_payment' AND nb.status = 'booked' AND h.webhook_url IS NOT NULL
    ON CONFLICT (hospital_id, dedupe_id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER bookings_confirmed AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS new_bookings
    FOR EACH STATEMENT EXECUTE FUNCTION notify_confirmed_inserted();
CREATE TRIGGER bookings_paid AFTER UPDATE ON bookings
    REFERENCING OLD TABLE AS old_bookings NEW TABLE AS new_bookings
    FOR EACH STATEMENT EXECUTE FUNCTION notify_confirmed_paid();
