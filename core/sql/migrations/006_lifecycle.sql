-- The registration lifecycle (API.md 1.1, Booking states): holds awaiting payment, expiry,
-- check-in, day-end settlement and suspension. A number is *held* while its booking is
-- pending_payment, booked, attended or no_show: every rule and invariant that counted
-- 'booked' in v1 counts `held` from here on.

ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check CHECK (
    status IN ('pending_payment', 'booked', 'cancelled', 'expired', 'attended', 'no_show'));

ALTER TABLE bookings
    ADD COLUMN held boolean GENERATED ALWAYS AS (
        status IN ('pending_payment', 'booked', 'attended', 'no_show')) STORED,
    -- Copied from the schedule at booking time, as hospital, department and date are.
    ADD COLUMN doctor_id text,
    ADD COLUMN period text CHECK (period IN ('am', 'pm', 'night')),
    ADD COLUMN fee_cents bigint CHECK (fee_cents >= 0),
    -- Set by the booking statement for a paid schedule: when the unpaid hold lapses.
    ADD COLUMN hold_expires_at timestamptz,
    ADD COLUMN cancelled_by text CHECK (cancelled_by IN ('patient', 'hospital')),
    ADD COLUMN attended_at timestamptz,
    ADD COLUMN expired_at timestamptz,
    ADD COLUMN settled_at timestamptz,
    ADD CONSTRAINT bookings_hold_expires CHECK (
        status <> 'pending_payment' OR hold_expires_at IS NOT NULL);

-- Every booking before this was a free one (v1 never charged) cancelled by its patient.
UPDATE bookings b SET doctor_id = s.doctor_id, period = s.period, fee_cents = s.fee_cents
FROM schedules s WHERE s.hospital_id = b.hospital_id AND s.id = b.schedule_id;
UPDATE bookings SET cancelled_by = 'patient' WHERE status = 'cancelled';
ALTER TABLE bookings
    ALTER COLUMN doctor_id SET NOT NULL,
    ALTER COLUMN period SET NOT NULL,
    ALTER COLUMN fee_cents SET NOT NULL;

DROP INDEX bookings_active_number;
DROP INDEX bookings_active_patient;
DROP INDEX bookings_patient_day;
DROP INDEX bookings_hospital_date;
CREATE UNIQUE INDEX bookings_held_number ON bookings (hospital_id, schedule_id, number)
    WHERE held;
CREATE UNIQUE INDEX bookings_held_patient ON bookings (hospital_id, schedule_id, patient_id)
    WHERE held;
CREATE INDEX bookings_patient_day ON bookings (patient_id, hospital_id, visit_date) WHERE held;
CREATE INDEX bookings_hospital_date ON bookings (hospital_id, visit_date) WHERE held;
-- The expiry sweep reads the holds that lapsed first.
CREATE INDEX bookings_holds_expiring ON bookings (hold_expires_at)
    WHERE status = 'pending_payment';
-- Check-in finds a code among the hospital's booked bookings of the day; day-end settlement
-- walks them.
CREATE INDEX bookings_booked_day ON bookings (hospital_id, visit_date, verification_code)
    WHERE status = 'booked';

-- A suspended schedule (a doctor stopped the session) is closed to bookings for good.
ALTER TABLE schedules
    ADD COLUMN suspended_at timestamptz,
    ADD COLUMN suspend_reason text CHECK (length(suspend_reason) <= 500);
CREATE INDEX schedules_suspended ON schedules (hospital_id, visit_date)
    WHERE suspended_at IS NOT NULL;

-- Day-end settlement per hospital and visit date: when it began and finished, and how many
-- bookings it settled as no-shows (counted in the transaction of each batch, so the count is
-- exact however often it was interrupted and resumed).
CREATE TABLE settlements (
    hospital_id text NOT NULL REFERENCES hospitals (id),
    visit_date  date NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    no_shows    integer NOT NULL DEFAULT 0 CHECK (no_shows >= 0),
    PRIMARY KEY (hospital_id, visit_date)
);

-- Wrong verification codes per hospital and staff member, in fixed windows: brute force
-- is refused (rate_limited) without Redis.
CREATE TABLE check_in_failures (
    hospital_id  text NOT NULL,
    staff        text NOT NULL,
    window_start timestamptz NOT NULL,
    failures     integer NOT NULL CHECK (failures >= 0),
    PRIMARY KEY (hospital_id, staff)
);

-- The Redis gates' outbox gains the closing of a suspended schedule's numbers.
CREATE TABLE redis_closures (
    hospital_id text NOT NULL,
    schedule_id bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, schedule_id)
);
