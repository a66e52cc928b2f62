-- A hospital's booking records.

-- name: hospital_bookings
-- One hospital's ($1) bookings after the position ($2 visit date, $3 id), with visits up to
-- $4, optionally of one department ($5), doctor ($6) and status ($7), in (visit_date, id)
-- order, at most $8 rows (NULL: all). The position is always given, so it is an index
-- condition on bookings_hospital_visit and a deep page costs what the first one does.
SELECT b.id, b.hospital_id, b.schedule_id, b.patient_id, b.department_id, s.doctor_id,
       b.visit_date, s.period, b.number, b.status, s.fee_cents, b.created_at, b.cancelled_at
FROM bookings b
JOIN schedules s ON s.hospital_id = b.hospital_id AND s.id = b.schedule_id
WHERE b.hospital_id = $1
  AND (b.visit_date, b.id) > ($2::date, $3::bigint)
  AND b.visit_date <= $4::date
  AND ($5::text IS NULL OR b.department_id = $5)
  AND ($6::text IS NULL OR s.doctor_id = $6)
  AND ($7::text IS NULL OR b.status = $7)
ORDER BY b.visit_date, b.id
LIMIT $8::bigint;
