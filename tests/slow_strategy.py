"""pg-pessimistic that pauses a second before each booking: a strategy slower than its
clients, so that deadlines, the waiting room and departing clients can be seen at work.

Never registered; serve it as `tests.slow_strategy:SlowStrategy`.
"""

from __future__ import annotations

import asyncio

from core.domain import BookingRequest, BookResult
from strategies.pg_pessimistic import PgPessimistic

PAUSE = 1.0


class SlowStrategy(PgPessimistic):
    name = "slow"

    async def _book(self, req: BookingRequest) -> BookResult:
        await asyncio.sleep(PAUSE)
        return await super()._book(req)
