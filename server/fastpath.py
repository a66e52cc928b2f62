"""The sold-out fast path: a schedule that answered sold out is answered from memory.

For at most `ttl` seconds after a strategy said sold out, further booking requests for that
schedule get the same pre-encoded bytes without touching Redis or PostgreSQL, and without a
token being decoded (sold-out status is public). A cancellation in this process forgets the
schedule at once; other processes forget it when the entry runs out, so a returned number is
bookable again everywhere within `ttl`.

While a crowd keeps asking, the entry is renewed before it runs out by one question to the
ledger ("is any number free?") instead of letting every request in flight at that moment
fall through to the strategy at once. That question is as good as a strategy's answer: the
ledger frees a number before any strategy can hand it out again (Redis gates take in Redis
first and write the ledger after; they cancel in the ledger first and give back after). A
schedule that has closed meanwhile is not sold out: the entry is dropped, and its bookings
are refused as closed.

An entry that ran out (the crowd paused longer than the renewal window) is not trusted, but
not dropped either: the first request for it asks the ledger that question, and every
request arriving meanwhile waits for the same answer. Otherwise the whole burst that ends
the pause (a connection's worth of requests per worker) would each verify a token and ask
the strategy, queueing on its row lock under pg-pessimistic: that burst held sold-out
answers to 0.02-0.12 of the ceiling in `slotrush bench --quick`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from time import monotonic

from aiohttp import web

from core.domain import Code
from server.metrics import SOLD_OUT_FAST_PATH
from server.problems import problem_response

log = logging.getLogger("slotrush.server")

# Entries are pruned only when there are this many; a few thousand sold-out schedules is a
# busy morning, not a leak.
_PRUNE_AT = 10_000
# Renewal starts when this share of the entry's life has passed: early enough to finish
# before it runs out, late enough to ask at most about once per `ttl`.
_RENEW_AFTER = 0.8

StillSoldOut = Callable[[int], Awaitable[bool]]


class SoldOutMemory:
    def __init__(self, ttl: float, still_sold_out: StillSoldOut) -> None:
        self._ttl = ttl
        self._renew_when_left = ttl * (1 - _RENEW_AFTER)
        self._still_sold_out = still_sold_out
        # Keyed by the schedule id exactly as it appears in the path: no parsing on a hit.
        # An entry past its time stays, as a schedule to ask the ledger about before answering.
        self._until: dict[str, float] = {}
        # The ledger question in flight per schedule, renewing or confirming its entry.
        self._asking: dict[str, asyncio.Task[bool]] = {}
        self._hits = SOLD_OUT_FAST_PATH

    def answer(self, schedule_id: str) -> web.Response | None:
        """The sold-out answer if this schedule is remembered as sold out, else None."""
        until = self._until.get(schedule_id)
        if until is None:
            return None
        left = until - monotonic()
        if left < 0:
            return None
        if left < self._renew_when_left:
            self._ask(schedule_id)
        self._hits.inc()
        return sold_out_response()

    async def confirm(self, schedule_id: str) -> web.Response | None:
        """For a request `answer` did not answer: the sold-out answer if the schedule's entry
        ran out and the ledger says it is still sold out, else None (ask the strategy)."""
        if schedule_id not in self._until:
            return None
        # Shielded: the question is shared, a request that goes away must not cancel it.
        sold_out = await asyncio.shield(self._ask(schedule_id))
        # A cancellation in this process meanwhile has dropped the entry.
        if not sold_out or schedule_id not in self._until:
            return None
        self._hits.inc()
        return sold_out_response()

    def remember(self, schedule_id: str) -> None:
        """Only for ids that name a schedule, in canonical form (renewal parses them)."""
        now = monotonic()
        if len(self._until) >= _PRUNE_AT:
            self._until = {k: t for k, t in self._until.items() if t >= now}
        self._until[schedule_id] = now + self._ttl

    def forget(self, schedule_id: str) -> None:
        self._until.pop(schedule_id, None)

    async def close(self) -> None:
        tasks = list(self._asking.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _ask(self, schedule_id: str) -> asyncio.Task[bool]:
        """The ledger question about this schedule: the one in flight, or a new one."""
        task = self._asking.get(schedule_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._ask_ledger(schedule_id))
            self._asking[schedule_id] = task
            task.add_done_callback(lambda _: self._asking.pop(schedule_id, None))
        return task

    async def _ask_ledger(self, schedule_id: str) -> bool:
        asked = monotonic()
        try:
            sold_out = await self._still_sold_out(int(schedule_id))
        except Exception as exc:
            # The entry stays as it was; a request past its time asks the strategy.
            log.warning("could not renew sold out for schedule %s: %r", schedule_id, exc)
            return False
        # Counted from the question, not the answer; a cancellation meanwhile has removed it.
        if schedule_id in self._until:
            if sold_out:
                self._until[schedule_id] = asked + self._ttl
            else:
                del self._until[schedule_id]
        return sold_out


def sold_out_response() -> web.Response:
    """Byte-identical on every sold-out answer, from memory or from a strategy."""
    return problem_response(Code.SOLD_OUT)
