"""What redis-lua and redis-queue share: a Redis gate in front of the PostgreSQL ledger.

A booking takes a number in Redis under a lease, writes the ledger row under the lease's
claim, then settles the lease. One concern per module:
- `gate`        RedisGate: take, write, settle or give back; the hooks of freed numbers and
                config changes
- `lease`       what a lease is, and the clock its deadline (when to look at it) is counted in
- `fence`       the lease's claim in the ledger: written or abandoned, exactly one
- `outbox`      Redis work the ledger owes (releases, config syncs), recorded with the change
- `coalescing`  script calls of concurrent requests sent in one round trip, with the
                confirmations of written leases and the reconcilers' announcements
- `loader`      loading a slot's Redis state from the ledger when Redis does not have it
- `reconciler`  settling what writers and the attempts after a commit left undone
- `replies`     Redis replies as text
"""
