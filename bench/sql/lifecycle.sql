-- What `slotrush bench --scenario lifecycle` reads from the ledger (bench.lifecycle).

-- name: lapse_to_reuse
-- Every hold of hospital $1 that lapsed, with the seconds from its hold_expires_at to the
-- creation of the next booking of its number (NULL while nobody booked it again).
SELECT e.id,
       extract(epoch FROM (
           SELECT min(b.created_at) FROM bookings b
           WHERE b.hospital_id = e.hospital_id AND b.schedule_id = e.schedule_id
             AND b.number = e.number AND b.created_at > e.created_at
       ) - e.hold_expires_at)::float8 AS seconds
FROM bookings e
WHERE e.hospital_id = $1 AND e.status = 'expired';
