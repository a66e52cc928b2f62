-- What the ledger costs on disk per booking (bench.ledger_size).

-- name: ledger_footprint
-- The bookings (every state) beside the bytes of their table with its indexes and TOAST,
-- and of the whole database (numbers, leases, outboxes, jobs and catalogs included).
SELECT count(*) AS rows,
       pg_total_relation_size('bookings') AS bookings_bytes,
       pg_database_size(current_database()) AS database_bytes
FROM bookings;
