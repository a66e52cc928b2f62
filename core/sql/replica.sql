-- Named queries run on a streaming replica (core/replica.py).

-- name: replica_lag
-- How far behind its primary this server's data is, in seconds: 0 when it replayed all the
-- WAL it received (or it is a primary), else the age of the last transaction it replayed;
-- NULL when it is not streaming from a primary, so that its data may be of any age. WAL
-- still on its way from the primary is not counted.
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())
END::float8 AS lag;
