-- Patients: the profile a patient keeps, each hospital's own tags, and the index the
-- records and analytics of a hospital read by.

-- The patient's own, on the regional platform, not any one hospital's: hospitals see it only
-- through the age bands of their own bookings' analytics.
CREATE TABLE patient_profiles (
    patient_id text PRIMARY KEY CHECK (patient_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    birth_date date NOT NULL CHECK (birth_date >= DATE '1900-01-01'),
    -- NULL: not stated.
    sex        text CHECK (sex IN ('female', 'male', 'other')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per tag: a hospital's grouping of its patients, never seen by another hospital.
CREATE TABLE patient_tags (
    hospital_id text NOT NULL REFERENCES hospitals (id),
    patient_id  text NOT NULL CHECK (patient_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    tag         text NOT NULL CHECK (length(tag) BETWEEN 1 AND 64),
    PRIMARY KEY (hospital_id, patient_id, tag)
);

-- Records are paged in (visit_date, id) order and analytics range over visit dates, both
-- within one hospital and over every status.
CREATE INDEX bookings_hospital_visit ON bookings (hospital_id, visit_date, id);
