"""HIS sync (API.md 1.1, Management): a hospital information system's schedule feed, keyed
by its own `external_id`, made the hospital's schedules.

- `feed`     a feed's rows, each checked on its own: a bad row is reported, not fatal
- `plan`     what a feed would change (the per-row diff), from the ledger's schedules
- `writes`   the ledger statements that apply a plan, in the caller's transaction
- `service`  HisSync: the dry run, the apply (one transaction per hospital), the upsert of
             POST /v1/admin/schedules by external_id
"""
