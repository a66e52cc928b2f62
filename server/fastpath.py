"""The sold-out fast path: a schedule that answered sold out is answered from memory.

For at most `ttl` seconds after a strategy said sold out, further booking requests for that
schedule get the same pre-encoded bytes without touching Redis or PostgreSQL, and without a
token being decoded (sold-out status is public). A cancellation in this process forgets the
schedule at once; other processes forget it when the entry runs out, so a returned number is
bookable again everywhere within `ttl`.
"""

from __future__ import annotations

from time import monotonic

from aiohttp import web

from core.domain import Code
from server.metrics import SOLD_OUT_FAST_PATH
from server.problems import problem_response

# Entries are pruned only when there are this many; a few thousand sold-out schedules is a
# busy morning, not a leak.
_PRUNE_AT = 10_000


class SoldOutMemory:
    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        # Keyed by the schedule id exactly as it appears in the path: no parsing on a hit.
        self._until: dict[str, float] = {}
        self._hits = SOLD_OUT_FAST_PATH

    def answer(self, schedule_id: str) -> web.Response | None:
        """The sold-out answer if this schedule is remembered as sold out, else None."""
        until = self._until.get(schedule_id)
        if until is None or until < monotonic():
            return None
        self._hits.inc()
        return sold_out_response()

    def remember(self, schedule_id: str) -> None:
        now = monotonic()
        if len(self._until) >= _PRUNE_AT:
            self._until = {k: t for k, t in self._until.items() if t >= now}
        self._until[schedule_id] = now + self._ttl

    def forget(self, schedule_id: str) -> None:
        self._until.pop(schedule_id, None)


def sold_out_response() -> web.Response:
    """Byte-identical on every sold-out answer, from memory or from a strategy."""
    return problem_response(Code.SOLD_OUT)
