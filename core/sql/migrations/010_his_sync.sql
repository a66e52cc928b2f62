-- HIS sync (API.md 1.1, Management): a schedule may carry the hospital information system's
-- own id for the session. A live (not suspended) schedule's external_id is unique in its
-- hospital, which makes creating one twice an upsert. A suspended one keeps its id for the
-- records, and the feed may name that id again for a new session: a suspension is for good.
ALTER TABLE schedules
    ADD COLUMN external_id text CHECK (external_id ~ '^[A-Za-z0-9._-]{1,64}$');
CREATE UNIQUE INDEX schedules_external_id ON schedules (hospital_id, external_id)
    WHERE external_id IS NOT NULL AND suspended_at IS NULL;

-- The Redis gates' outbox gains capacity changes: numbers a sync added to a schedule (or
-- took off it) that Redis must offer (or stop offering). Each change is applied once (by its
-- id), in the order of the ids.
CREATE TABLE redis_resizes (
    hospital_id text NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    schedule_id bigint NOT NULL,
    before      integer NOT NULL,
    after       integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hospital_id, id)
);
