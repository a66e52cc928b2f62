"""The fault suite: a flash crowd books while the system under it crashes, stalls and loses
responses; afterwards no confirmed booking may be missing and no retry may have booked twice.

Every scenario (one strategy, one fault) gets its own database, Redis key prefix and
`slotrush serve` process, against a Redis (append-only, fsync always) and a PostgreSQL the
suite starts itself, never the machine's. Clients send every booking with an Idempotency-Key
and record each request as ok, failed or unknown (bench.history). After the crowd:
- every unknown is resent with its key until the answer is definite;
- every 201 a client saw is a booking its owner can read, and the only one the patient holds;
- a patient told "no" holds nothing; nothing is oversold (the audit, from PostgreSQL);
- for Redis strategies, once the lease has passed, Redis has exactly capacity - booked free
  numbers per schedule (a lost ledger write, or a resent take script, leaks none);
- after each restart a booking succeeds within FIRST_SUCCESS_LIMIT (result.py) seconds;
- no 5xx outside the fault windows: 503 busy naming a failed store call is the expected
  answer inside one; a 503 busy that names none (a strategy giving up under contention, as
  API.md allows) is counted apart.

Modules: config (the crowd and the run's settings), services (the servers it kills),
injectors (the faults: a new one goes there), workload (the crowd and its resends), scenario
(one strategy under one fault), checker, result, report, and cli (`slotrush faults`).
"""
