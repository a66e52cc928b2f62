-- Named queries of hospitals, departments and doctors as resources (core/hospitals.py, API.md
-- 1.1 Management) and of the booking terms each hospital sets (core/terms.py). A deleted row
-- stays (deleted_at) for the schedules and bookings that name it, and reads as absent here.

-- name: booking_terms
SELECT h.id, h.timezone, h.cancel_cutoff_minutes, h.deleted_at IS NOT NULL AS deleted,
       ARRAY(SELECT d.id FROM departments d
             WHERE d.hospital_id = h.id AND d.deleted_at IS NOT NULL) AS deleted_departments,
       ARRAY(SELECT d.id FROM doctors d
             WHERE d.hospital_id = h.id AND d.deleted_at IS NOT NULL) AS deleted_doctors,
       -- Past visit dates are closed anyway (two days' margin for the zones of the world).
       ARRAY(SELECT s.id FROM schedules s
             WHERE s.hospital_id = h.id AND s.suspended_at IS NOT NULL
               AND s.visit_date >= current_date - 2) AS suspended_schedules
FROM hospitals h
WHERE h.id = ANY($1::text[]);

-- name: revive_named
-- A schedule naming a deleted hospital, department or doctor brings it back: v1 upserts what a
-- schedule names. Only deleted rows are touched (and locked).
WITH hospital AS (
    UPDATE hospitals SET deleted_at = NULL
    WHERE id = ANY($1::text[]) AND deleted_at IS NOT NULL
), department AS (
    UPDATE departments d SET deleted_at = NULL
    FROM unnest($2::text[], $3::text[]) AS n(hospital_id, id)
    WHERE d.hospital_id = n.hospital_id AND d.id = n.id AND d.deleted_at IS NOT NULL
), doctor AS (
    UPDATE doctors d SET deleted_at = NULL
    FROM unnest($4::text[], $5::text[]) AS n(hospital_id, id)
    WHERE d.hospital_id = n.hospital_id AND d.id = n.id AND d.deleted_at IS NOT NULL
)
SELECT 1;

-- name: get_hospital
SELECT id, coalesce(name, id) AS name, timezone, settle_at, cancel_cutoff_minutes,
       payment_window_minutes, webhook_url
FROM hospitals
WHERE id = $1 AND deleted_at IS NULL;

-- name: put_hospital
-- Rules (max_per_day, max_per_department_per_day) are the rules endpoint's and stay as they are.
INSERT INTO hospitals (id, name, timezone, settle_at, cancel_cutoff_minutes,
                       payment_window_minutes, webhook_url)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone,
    settle_at = EXCLUDED.settle_at, cancel_cutoff_minutes = EXCLUDED.cancel_cutoff_minutes,
    payment_window_minutes = EXCLUDED.payment_window_minutes,
    webhook_url = EXCLUDED.webhook_url, deleted_at = NULL;

-- name: hospital_rules
SELECT max_per_day, max_per_department_per_day, cancel_cutoff_minutes
FROM hospitals
WHERE id = $1 AND deleted_at IS NULL;

-- name: lock_hospital
-- Its time zone, holding the row until the transaction ends.
SELECT timezone FROM hospitals WHERE id = $1 AND deleted_at IS NULL FOR UPDATE;

-- name: get_department
SELECT d.hospital_id, d.id, coalesce(d.name, d.id) AS name
FROM departments d JOIN hospitals h ON h.id = d.hospital_id
WHERE d.hospital_id = $1 AND d.id = $2 AND d.deleted_at IS NULL AND h.deleted_at IS NULL;

-- name: put_department
-- No row when the hospital does not exist.
INSERT INTO departments (hospital_id, id, name)
SELECT h.id, $2, $3 FROM hospitals h WHERE h.id = $1 AND h.deleted_at IS NULL
ON CONFLICT (hospital_id, id) DO UPDATE SET name = EXCLUDED.name, deleted_at = NULL
RETURNING 1;

-- name: get_doctor
SELECT d.hospital_id, d.id, coalesce(d.name, d.id) AS name, d.title, d.department_id,
       d.fee_cents
FROM doctors d JOIN hospitals h ON h.id = d.hospital_id
WHERE d.hospital_id = $1 AND d.id = $2 AND d.deleted_at IS NULL AND h.deleted_at IS NULL;

-- name: put_doctor
-- No row when the hospital or the department ($5) does not exist.
INSERT INTO doctors (hospital_id, id, name, title, department_id, fee_cents)
SELECT dep.hospital_id, $2, $3, $4, dep.id, $6
FROM departments dep JOIN hospitals h ON h.id = dep.hospital_id
WHERE dep.hospital_id = $1 AND dep.id = $5 AND dep.deleted_at IS NULL AND h.deleted_at IS NULL
ON CONFLICT (hospital_id, id) DO UPDATE SET name = EXCLUDED.name, title = EXCLUDED.title,
    department_id = EXCLUDED.department_id, fee_cents = EXCLUDED.fee_cents, deleted_at = NULL
RETURNING 1;

-- name: delete_hospital
UPDATE hospitals SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING 1;

-- name: delete_department
UPDATE departments SET deleted_at = now()
WHERE hospital_id = $1 AND id = $2 AND deleted_at IS NULL
RETURNING 1;

-- name: delete_doctor
UPDATE doctors SET deleted_at = now()
WHERE hospital_id = $1 AND id = $2 AND deleted_at IS NULL
RETURNING 1;

-- name: held_bookings_from
-- Whether a booking holds a number of the hospital (of one department or doctor, if given)
-- for a visit on or after $2, the hospital's today. Past visits never block a deletion.
SELECT EXISTS (
    SELECT 1 FROM bookings b
    JOIN schedules s ON s.hospital_id = b.hospital_id AND s.id = b.schedule_id
    WHERE b.hospital_id = $1 AND b.visit_date >= $2 AND b.held
      AND ($3::text IS NULL OR b.department_id = $3)
      AND ($4::text IS NULL OR s.doctor_id = $4)
);

-- name: list_hospitals
-- One page of the hospitals that are not deleted, in id order after $1.
-- Crosses hospitals: the list of hospitals.
SELECT id, coalesce(name, id) AS name, timezone, settle_at, cancel_cutoff_minutes,
       payment_window_minutes, webhook_url
FROM hospitals
WHERE deleted_at IS NULL AND ($1::text IS NULL OR id > $1)
ORDER BY id
LIMIT $2;

-- name: list_departments
-- One page of a hospital's departments that are not deleted, in id order after $2.
SELECT hospital_id, id, coalesce(name, id) AS name
FROM departments
WHERE hospital_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR id > $2)
ORDER BY id
LIMIT $3;

-- name: list_doctors
-- One page of a hospital's doctors that are not deleted (of one department, if $2), in id
-- order after $3.
SELECT hospital_id, id, coalesce(name, id) AS name, title, department_id, fee_cents
FROM doctors
WHERE hospital_id = $1 AND deleted_at IS NULL
  AND ($2::text IS NULL OR department_id = $2)
  AND ($3::text IS NULL OR id > $3)
ORDER BY id
LIMIT $4;
