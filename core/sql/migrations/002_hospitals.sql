-- Hospitals, departments and doctors become resources an administrator manages (API.md 1.1,
-- Management). Rows a schedule upserted (v1) keep working unchanged: a NULL name means the
-- id stands for it, and their hospital's time zone is UTC until an administrator sets one.
-- Deleting is soft (deleted_at): schedules and bookings keep referring to what they named.

ALTER TABLE hospitals
    ADD COLUMN name text CHECK (length(name) BETWEEN 1 AND 200),
    -- An IANA name; the server checks it against its zone database before writing it.
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC',
    -- Day-end settlement runs at this local time of the visit date.
    ADD COLUMN settle_at time NOT NULL DEFAULT '23:00',
    ADD COLUMN payment_window_minutes integer NOT NULL DEFAULT 15
        CHECK (payment_window_minutes BETWEEN 1 AND 1440),
    ADD COLUMN webhook_url text CHECK (length(webhook_url) <= 2048),
    ADD COLUMN deleted_at timestamptz;

-- A cutoff beyond a year is no rule; unbounded, the largest put the cutoff before year 1.
UPDATE hospitals SET cancel_cutoff_minutes = 525600 WHERE cancel_cutoff_minutes > 525600;
ALTER TABLE hospitals ADD CHECK (cancel_cutoff_minutes <= 525600);

ALTER TABLE departments
    ADD COLUMN name text CHECK (length(name) BETWEEN 1 AND 200),
    ADD COLUMN deleted_at timestamptz;

ALTER TABLE doctors
    ADD COLUMN name text CHECK (length(name) BETWEEN 1 AND 200),
    ADD COLUMN title text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
    -- NULL only for a doctor nothing has placed in a department yet.
    ADD COLUMN department_id text,
    ADD COLUMN fee_cents bigint NOT NULL DEFAULT 0 CHECK (fee_cents >= 0),
    ADD COLUMN deleted_at timestamptz,
    ADD FOREIGN KEY (hospital_id, department_id) REFERENCES departments (hospital_id, id);

-- A doctor a schedule named works in that schedule's department (the first one, if several).
UPDATE doctors d SET department_id = (
    SELECT s.department_id FROM schedules s
    WHERE s.hospital_id = d.hospital_id AND s.doctor_id = d.id
    ORDER BY s.id LIMIT 1
);

-- What booking needs to know of a hospital is one row and two short index scans away.
CREATE INDEX departments_deleted ON departments (hospital_id) WHERE deleted_at IS NOT NULL;
CREATE INDEX doctors_deleted ON doctors (hospital_id) WHERE deleted_at IS NOT NULL;
