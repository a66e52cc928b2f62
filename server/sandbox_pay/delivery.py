"""Webhooks: each notice signed when sent (core.payments.signing) and sent until answered
2xx, with the faults the sandbox was asked for: every notice twice (`duplicate`), each only
after `delay` seconds (late), or each held until the next one overtakes it (`reorder`: the
newer goes first; one alone goes after `reorder_window`)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Final

import aiohttp
import orjson

from core.payments import signing
from server.sandbox_pay.state import Ledger

log = logging.getLogger("slotrush.sandbox_pay")

# Attempts at one notice before the sandbox gives up on it, and the pauses between them.
_ATTEMPTS: Final = 30
_FIRST_PAUSE: Final = 0.2
_LONGEST_PAUSE: Final = 5.0
_SEND_TIMEOUT: Final = aiohttp.ClientTimeout(total=10)


@dataclass
class Faults:
    """What the sandbox does wrong, on purpose; changed at run time by POST /control."""

    # Every API call (checkouts, refunds, queries) answers 503.
    fail: bool = False
    # Every API call waits this long before answering (a client's timeout should fire).
    timeout: float = 0.0
    duplicate: bool = False
    delay: float = 0.0
    reorder: bool = False
    reorder_window: float = 1.0
    webhook_url: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Delivery:
    event_id: str
    type: str
    reference: str
    # The HTTP status answered, or the error of the attempt.
    outcome: str
    at: float


class Deliverer:
    def __init__(self, faults: Faults, secret: str, ledger: Ledger) -> None:
        self._faults = faults
        self._secret = secret
        # Remembers each notice until it is answered 2xx (across a restart, if journalled).
        self._ledger = ledger
        self._held: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.log: list[Delivery] = []

    def send(self, event: dict[str, Any]) -> None:
        """Deliver `event` in the background, with the faults in force now."""
        self._ledger.notice_queued(event)
        self._start(event)

    def resend_undelivered(self) -> None:
        """Deliver again what an earlier run of the sandbox never got answered."""
        for event in list(self._ledger.undelivered.values()):
            self._start(event)

    def _start(self, event: dict[str, Any]) -> None:
        task = asyncio.create_task(self._dispatch(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _dispatch(self, event: dict[str, Any]) -> None:
        faults = self._faults
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if not faults.reorder:
            await self._deliver(event)
            return
        overtaken, self._held = self._held, event
        if overtaken is None:
            await asyncio.sleep(faults.reorder_window)
            if self._held is event:
                self._held = None
                await self._deliver(event)
            return
        self._held = None
        await self._deliver(event)
        await self._deliver(overtaken)

    async def _deliver(self, event: dict[str, Any]) -> None:
        times = 2 if self._faults.duplicate else 1
        for _ in range(times):
            await self._until_answered(event)

    async def _until_answered(self, event: dict[str, Any]) -> None:
        pause = _FIRST_PAUSE
        for _ in range(_ATTEMPTS):
            outcome = await self._attempt(event)
            self.log.append(
                Delivery(
                    event["id"], event["type"], event["data"]["reference"], outcome, time.time()
                )
            )
            if outcome.startswith("2"):
                self._ledger.notice_delivered(event["id"])
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
        log.warning("gave up on notice %s", event["id"])

    async def _attempt(self, event: dict[str, Any]) -> str:
        url = self._faults.webhook_url
        if url is None:
            return "no webhook_url"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_SEND_TIMEOUT)
        body = orjson.dumps(event)
        headers = {
            "Content-Type": "application/json",
            signing.HEADER: signing.sign(self._secret, body, int(time.time())),
        }
        try:
            async with self._session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                return str(answer.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return repr(exc)
