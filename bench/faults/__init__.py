"""The fault suite: a flash crowd books while the system under it crashes, stalls and loses
replies; afterwards no promise of API.md may be broken.

Every scenario (one strategy, one fault) gets its own database, Redis key prefix and
`slotrush serve` process, against a Redis (append-only, fsync always) and a PostgreSQL the
suite starts itself, never the machine's. Patients want several numbers on one date (so the
per-day and per-department limits refuse some), some cancel and book again, some are
blacklisted as the crowd arrives. Clients send every booking with an Idempotency-Key and
record each request, bookings and cancellations, as ok, failed or unknown (bench.history).
After the crowd, checked against the ledger's own rows:
- every unknown is resent with its key (a cancellation likewise) until the answer is definite;
- every 201 a client saw is a booking its owner can read, cancelled only if its client
  cancelled it; an intent told "no" booked nothing; nothing is oversold or doubled;
- no patient is past a limit, none booked after the answer to their blacklisting;
- fresh patients can book every number the ledger has free (cancelled ones included);
- for Redis strategies, once the lease has passed, Redis has exactly the free numbers the
  ledger leaves, no lease out, and (redis-lua) the patient counters the active rows make;
- after each restart a booking succeeds within FIRST_SUCCESS_LIMIT (result.py) seconds;
- no 5xx outside the fault windows: 503 busy naming a failed store call is the expected
  answer inside one; a 503 busy that names none (a strategy giving up under contention, as
  API.md allows) is counted apart.

Modules: config (the crowd and the run's settings), services (the servers it kills),
injectors (the faults: a new one goes there), workload (the crowd and its resends), scenario
(one strategy under one fault), checker, result, report, and cli (`slotrush faults`).
"""
