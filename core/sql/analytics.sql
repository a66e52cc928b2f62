-- The outcomes of a hospital's bookings, counted by group.

-- name: booking_outcomes
-- Outcome counts of one hospital's ($1) bookings with visits from $3 to $4, grouped by $2:
-- 'department'; 'weekday' (ISO 1..7 of the visit); 'age_band' (the patient's age at the
-- visit, bucketed by the lower bounds $5; no profile, or a visit before the birth date, is
-- NULL); 'lead_time' (days from the booking's date to the visit, bucketed by $6). A bucket
-- is width_bucket's: 0 below the first bound. The booking's date is its date in the
-- hospital's time zone, the calendar its visit dates are on.
SELECT g.department, g.bucket,
       count(*) AS bookings,
       count(*) FILTER (WHERE g.status = 'attended') AS attended,
       count(*) FILTER (WHERE g.status = 'no_show') AS no_shows,
       count(*) FILTER (WHERE g.status = 'cancelled') AS cancellations
FROM (
    SELECT b.status,
           CASE WHEN $2::text = 'department' THEN b.department_id END AS department,
           CASE $2::text
               WHEN 'weekday' THEN extract(isodow FROM b.visit_date)::int
               WHEN 'age_band' THEN width_bucket(
                   CASE WHEN p.birth_date <= b.visit_date
                        THEN extract(year FROM age(b.visit_date::timestamp,
                                                   p.birth_date::timestamp))::int END,
                   $5::int[])
               WHEN 'lead_time' THEN width_bucket(
                   b.visit_date - (b.created_at AT TIME ZONE h.timezone)::date, $6::int[])
           END AS bucket
    FROM bookings b
    JOIN hospitals h ON h.id = b.hospital_id
    LEFT JOIN patient_profiles p ON $2::text = 'age_band' AND p.patient_id = b.patient_id
    WHERE b.hospital_id = $1 AND b.visit_date BETWEEN $3::date AND $4::date
) g
GROUP BY g.department, g.bucket;
