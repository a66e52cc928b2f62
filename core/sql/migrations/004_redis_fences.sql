-- What keeps the Redis strategies' state (strategies/redis_gate/) following the ledger
-- through lost replies, crashes and admin changes.

-- Bumped in the transaction of every rules or blacklist change: a slot loaded from an older
-- snapshot sees it moved and catches up.
ALTER TABLE hospitals ADD COLUMN config_version bigint NOT NULL DEFAULT 0;

-- The fence between a lease's writer and whoever gives its number back. The writer claims
-- 'written' in the statement that writes the row, the other claims 'abandoned' before giving
-- back; the primary key makes the later one wait for the first and lose, so exactly one
-- happens, whatever the clocks. A lease's booking row carries the lease id as request_id.
CREATE TABLE lease_claims (
    hospital_id text NOT NULL,
    lease_id    uuid NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('written', 'abandoned')),
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, lease_id)
);
CREATE INDEX lease_claims_claimed_at ON lease_claims (claimed_at);

-- The outbox of Redis work the ledger owes: written in the transaction of the change, applied
-- right after its commit, deleted once Redis has it; what is left is drained by reconcilers.
-- A freed number to return to Redis (a cancellation):
CREATE TABLE redis_releases (
    hospital_id text NOT NULL,
    booking_id  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, booking_id)
);
-- A hospital whose rules and blacklist Redis must catch up with, up to `version`:
CREATE TABLE redis_config_syncs (
    hospital_id text PRIMARY KEY,
    version     bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
