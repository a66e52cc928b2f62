-- Every ledger table keyed by its hospital, so that the ledger can be distributed by
-- hospital_id (docs/CITUS.md): each row carries hospital_id (hospitals: id), and every primary
-- key, unique index and foreign key between hospital-keyed tables includes it, which is what
-- lets a distributed PostgreSQL check each of them inside one hospital's shard. Constraint and
-- index names stay as they were.

-- A number's hospital is its schedule's.
ALTER TABLE schedule_numbers ADD COLUMN hospital_id text;
UPDATE schedule_numbers n SET hospital_id = s.hospital_id
FROM schedules s WHERE s.id = n.schedule_id;
ALTER TABLE schedule_numbers ALTER COLUMN hospital_id SET NOT NULL;

-- The foreign keys naming the old keys go first, then the keys, then the foreign keys again.
ALTER TABLE bookings
    DROP CONSTRAINT bookings_schedule_id_fkey,
    DROP CONSTRAINT bookings_schedule_id_number_fkey;
ALTER TABLE schedule_numbers DROP CONSTRAINT schedule_numbers_schedule_id_fkey;

ALTER TABLE schedules DROP CONSTRAINT schedules_pkey, ADD PRIMARY KEY (hospital_id, id);
ALTER TABLE schedule_numbers
    DROP CONSTRAINT schedule_numbers_pkey,
    ADD PRIMARY KEY (hospital_id, schedule_id, number),
    ADD CONSTRAINT schedule_numbers_schedule_id_fkey FOREIGN KEY (hospital_id, schedule_id)
        REFERENCES schedules (hospital_id, id);
ALTER TABLE bookings
    DROP CONSTRAINT bookings_pkey,
    ADD PRIMARY KEY (hospital_id, id),
    -- A request id names one attempt at one schedule, so one hospital's bookings suffice.
    DROP CONSTRAINT bookings_request_id_key,
    ADD CONSTRAINT bookings_request_id_key UNIQUE (hospital_id, request_id),
    ADD CONSTRAINT bookings_schedule_id_fkey FOREIGN KEY (hospital_id, schedule_id)
        REFERENCES schedules (hospital_id, id),
    ADD CONSTRAINT bookings_schedule_id_number_fkey FOREIGN KEY (hospital_id, schedule_id, number)
        REFERENCES schedule_numbers (hospital_id, schedule_id, number);

DROP INDEX schedule_numbers_booking;
CREATE UNIQUE INDEX schedule_numbers_booking ON schedule_numbers (hospital_id, booking_id);
DROP INDEX bookings_active_number;
CREATE UNIQUE INDEX bookings_active_number ON bookings (hospital_id, schedule_id, number)
    WHERE status = 'booked';
DROP INDEX bookings_active_patient;
CREATE UNIQUE INDEX bookings_active_patient ON bookings (hospital_id, schedule_id, patient_id)
    WHERE status = 'booked';
-- An Idempotency-Key is the patient's at one hospital.
DROP INDEX bookings_idempotency;
CREATE UNIQUE INDEX bookings_idempotency ON bookings (hospital_id, patient_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Lookups by an id alone (a path of the API that names no hospital) keep an index of their
-- own now that the primary keys start with the hospital.
CREATE INDEX schedules_id ON schedules (id);
CREATE INDEX bookings_id ON bookings (id);
