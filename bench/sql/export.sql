-- Rows for the CSV export benchmark (bench.export_memory).

-- name: fill_hospital
-- Books every number of every schedule of hospital $1 for a patient of its own, in one
-- statement, the way a strategy would: each booking holds its number. Free schedules only
-- (a paid one's bookings start pending_payment, with a hold this statement does not set).
WITH b AS (
    INSERT INTO bookings (schedule_id, patient_id, hospital_id, department_id, doctor_id,
                          visit_date, period, fee_cents, number, verification_code, request_id)
    SELECT s.id, 'p-' || s.id || '-' || n.number, s.hospital_id, s.department_id, s.doctor_id,
           s.visit_date, s.period, s.fee_cents, n.number, 'ABCDEFGH', gen_random_uuid()
    FROM schedules s
    JOIN schedule_numbers n ON n.hospital_id = s.hospital_id AND n.schedule_id = s.id
    WHERE s.hospital_id = $1
    RETURNING id, hospital_id, schedule_id, number
)
UPDATE schedule_numbers n SET booking_id = b.id FROM b
WHERE n.hospital_id = b.hospital_id AND n.schedule_id = b.schedule_id AND n.number = b.number;
