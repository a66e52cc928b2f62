-- A simulated season written to the ledger in bulk (bench.season.write).

-- name: insert_profiles
INSERT INTO patient_profiles (patient_id, birth_date, sex)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[])
ON CONFLICT (patient_id) DO UPDATE SET birth_date = EXCLUDED.birth_date, sex = EXCLUDED.sex;

-- name: insert_settled_bookings
-- Bookings whose visit is over: attended and no-show ones hold their number, as in API.md
-- 1.1; cancelled ones gave it back.
WITH b AS (
    INSERT INTO bookings (schedule_id, patient_id, hospital_id, department_id, doctor_id,
                          visit_date, period, fee_cents, number, verification_code, status,
                          request_id, created_at, cancelled_at, cancelled_by)
    SELECT r.schedule_id, r.patient_id, r.hospital_id, r.department_id, s.doctor_id,
           r.visit_date, s.period, s.fee_cents, r.number, r.verification_code, r.status,
           r.request_id, r.created_at, r.cancelled_at,
           CASE WHEN r.status = 'cancelled' THEN 'patient' END
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::date[], $6::int[],
                $7::text[], $8::text[], $9::uuid[], $10::timestamptz[], $11::timestamptz[])
        AS r(schedule_id, patient_id, hospital_id, department_id, visit_date, number,
             verification_code, status, request_id, created_at, cancelled_at)
    JOIN schedules s ON s.hospital_id = r.hospital_id AND s.id = r.schedule_id
    RETURNING id, hospital_id, schedule_id, number, status
), n AS (
    UPDATE schedule_numbers n SET booking_id = b.id FROM b
    WHERE b.status <> 'cancelled' AND n.hospital_id = b.hospital_id
      AND n.schedule_id = b.schedule_id AND n.number = b.number
)
SELECT count(*) FROM b;
