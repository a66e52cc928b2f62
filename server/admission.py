"""The waiting room in front of the strategy: at most `in_flight` bookings of this process
run at once, at most `queue` more wait for a turn, and whoever finds both full is answered
503 `busy` at once.

Without it a crowd larger than the strategy can serve queues without limit inside the
process (for a pooled connection, a row lock, the Redis batcher): every booking gets slower
and memory grows. With it the excess learns at once to come back later, and the request
deadline (server.middlewares) bounds how long the admitted ones wait.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from core.domain import Code
from core.errors import SlotrushError
from server.metrics import LOAD_SHED

_FULL = LOAD_SHED.labels("booking_queue_full")


class Admission:
    """`async with admission:` around a booking; raises SlotrushError(busy) when full."""

    def __init__(self, in_flight: int, queue: int) -> None:
        if in_flight < 1 or queue < 0:
            raise ValueError(f"need in_flight >= 1 and queue >= 0, not {in_flight}, {queue}")
        self._seats = asyncio.Semaphore(in_flight)
        self._queue = queue
        self._waiting = 0

    def refuse_if_full(self) -> None:
        """Busy at once when no seat is free and the queue is full. A booking handler asks
        before anything else (its token included): under overload the answer to the excess
        must cost next to nothing, or answering it is itself the overload."""
        if self._seats.locked() and self._waiting >= self._queue:
            _FULL.inc()
            raise SlotrushError(Code.BUSY, "too many bookings in progress; retry shortly")

    async def __aenter__(self) -> None:
        self.refuse_if_full()
        self._waiting += 1
        try:
            await self._seats.acquire()
        finally:
            self._waiting -= 1

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._seats.release()
