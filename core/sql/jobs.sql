-- Named queries of the job runner (core/jobs/runner.py) on pgqueuer's tables, which our
-- migrations install (007_job_queue.sql).

-- name: release_stale_ticks
-- Ticks of the periodic jobs $1 claimed by a process that stopped beating over $2 seconds
-- ago (it died mid-tick; a live one beats every second): queued again, so the next tick
-- runs now instead of after pgqueuer's own 30 seconds.
UPDATE pgqueuer_schedules SET status = 'queued', updated = now()
WHERE entrypoint = ANY($1::text[]) AND status = 'picked'
  AND heartbeat < now() - make_interval(secs => $2)
RETURNING entrypoint;
