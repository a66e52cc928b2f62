"""What redis-lua and redis-queue share: a Redis gate in front of the PostgreSQL ledger.

A booking takes a number in Redis under a lease (a deadline recorded beside it), writes the
ledger row before the deadline, then settles the lease. One concern per module:
- `gate`        RedisGate: take, write, settle or give back; a cancellation's release
- `lease`       what a lease is, and the clock its deadline is counted in
- `coalescing`  script calls of concurrent requests sent in one round trip, with the
                confirmations of written leases and the reconcilers' announcements
- `loader`      loading a slot's Redis state from the ledger when Redis does not have it
- `reconciler`  settling the leases of writers that died
- `replies`     Redis replies as text
"""
