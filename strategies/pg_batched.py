"""pg-batched: bookings of one schedule that arrive together share one transaction.

pg-pessimistic's locks, paid once per batch instead of once per booking (group commit): the
day locks of all the batch's patients in one sorted statement, one schedule lock, one
statement that checks every rule per patient, numbers the admitted in arrival order and
writes them all, one commit. Cancelling is pg-pessimistic's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from core.batching import Coalescer
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected
from core.keyed import InUse
from core.ledger import booking_from_row
from core.queries import query as q
from core.stores import Stores
from core.verification import new_verification_code
from strategies.pg_pessimistic import PgPessimistic

# Bookings per transaction: bounds one statement's arrays and the wait of its last member.
_MAX_BATCH = 256
# Batches of one schedule queue on its row lock anyway: one at a time per process keeps
# them in arrival order, and the next batch gathers while the last one commits.
_IN_FLIGHT_PER_SCHEDULE = 1

_PLAN_FOR_THESE_VALUES = "SET LOCAL plan_cache_mode = force_custom_plan"

Batcher = Coalescer[BookingRequest, BookResult]


class PgBatched(PgPessimistic):
    name = "pg-batched"

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        # Kept only while a booking of the schedule waits, so idle schedules cost nothing.
        self._batchers: InUse[int, Batcher] = InUse(self._new_batcher)

    def _new_batcher(self) -> Batcher:
        return Coalescer(
            self._book_batch, max_batch=_MAX_BATCH, max_in_flight=_IN_FLIGHT_PER_SCHEDULE
        )

    async def _book(self, req: BookingRequest) -> BookResult:
        with self._batchers.use(req.schedule.id) as batcher:
            return await batcher.submit(req)

    async def _book_batch(self, batch: Sequence[BookingRequest]) -> list[BookResult]:
        # A failure anywhere rolls the whole batch back and reaches every member as busy.
        s = batch[0].schedule
        patients = [req.patient_id for req in batch]
        async with self.stores.pg.acquire() as conn, conn.transaction():
            # book_batch planned for its own values each time: a generic plan, made from the
            # statistics of a day that a crowd is filling (stale by seconds), read every
            # booking of the hospital per request and held the hot schedule's lock for 200 ms
            # a batch. Planning costs about a millisecond a batch.
            await conn.execute(_PLAN_FOR_THESE_VALUES)
            suspended = await conn.fetchval(
                q("lock_batch"), s.id, s.hospital_id, s.visit_date, patients
            )
            if suspended:
                return [Rejected(Code.SCHEDULE_CLOSED)] * len(batch)
            rows = await conn.fetch(
                q("book_batch"),
                s.id,
                s.hospital_id,
                s.department_id,
                s.visit_date,
                patients,
                [uuid.UUID(req.request_id) for req in batch],
                [req.idempotency_key for req in batch],
                [new_verification_code() for _ in batch],
            )
        return _answers(batch, rows)


def _answers(batch: Sequence[BookingRequest], rows: Sequence[asyncpg.Record]) -> list[BookResult]:
    """Each request's answer from its row of book_batch, in arrival order."""
    answers: list[BookResult] = []
    # Each patient's first admissible request: a later one is answered as it left them.
    first: dict[str, BookResult] = {}
    for req, row in zip(batch, rows, strict=True):
        answer: BookResult
        # A resend (same Idempotency-Key, so the same request id) finds its twin's booking
        # row too: only the first is the booking's making, the resend is answered as a replay.
        if row["id"] is not None and req.patient_id not in first:
            answer = booking_from_row(row)
        elif row["refusal"] is not None:
            answer = Rejected(Code(row["refusal"]))
        elif req.patient_id in first:
            earlier = first[req.patient_id]
            answer = Rejected(Code.ALREADY_BOOKED) if isinstance(earlier, Booking) else earlier
        elif row["offered"] is None:
            answer = Rejected(Code.SOLD_OUT)
        else:
            # The ledger refused the row: only a key used meanwhile by another transaction can.
            answer = Rejected(Code.IDEMPOTENCY_CONFLICT)
        if row["refusal"] is None:
            first.setdefault(req.patient_id, answer)
        answers.append(answer)
    return answers
