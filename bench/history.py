"""The clients' side of a fault run, kept the way Jepsen keeps it.

Every booking request, and every cancellation of a booking one got, is recorded with its
outcome as the client saw it:
- ok: a 201 with a booking;
- failed: a definite answer that this request booked nothing (a 4xx, or a connection that
  was refused, so nothing was sent);
- unknown (Jepsen's :info): a timeout, a dropped connection or a 5xx. The booking may or may
  not have been made; only a retry with the same Idempotency-Key, or the ledger, can tell.

A 503 counts as unknown on purpose: a dependency can fail after the ledger row committed
(say, while the commit's reply was on its way), so "busy" does not prove nothing was booked.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
import orjson

# The answer a same-key retry gets while the first request is still in flight somewhere (a
# paused worker, say): the patient does hold a booking, but the replay is not ready yet.
IN_PROGRESS_CODES = frozenset({"already_booked"})


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Intent:
    """One patient's wish for one booking, sent (and resent) under one Idempotency-Key."""

    patient_id: str
    schedule_id: str
    key: str


class Action(StrEnum):
    BOOK = "book"
    # The cancellation of the booking an intent got (Attempt.booking_id).
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Attempt:
    intent: Intent
    phase: str
    started: float
    ended: float
    outcome: Outcome
    # None when no HTTP answer came back.
    status: int | None
    # The problem's code, or the name of the exception that ended the request.
    detail: str
    booking_id: str | None = None
    # The problem's own explanation, if it gave one: which store call failed behind a 503.
    reason: str | None = None
    action: Action = Action.BOOK

    @property
    def settled(self) -> bool:
        """Whether this answer tells the fate of its intent, ending the retries. A refused
        connection does not: it says nothing about the attempts before it."""
        if self.outcome is Outcome.OK:
            return True
        return (
            self.outcome is Outcome.FAILED
            and self.status is not None
            and self.detail not in IN_PROGRESS_CODES
        )

    def overlaps(self, start: float, end: float) -> bool:
        return self.started <= end and self.ended >= start


class History:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self._last: dict[tuple[Intent, Action], Attempt] = {}

    def add(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        self._last[attempt.intent, attempt.action] = attempt

    def last(self, intent: Intent, action: Action = Action.BOOK) -> Attempt | None:
        return self._last.get((intent, action))

    def of(self, intent: Intent) -> list[Attempt]:
        return [a for a in self.attempts if a.intent == intent and a.action is Action.BOOK]

    def cancelled(self, intent: Intent) -> bool:
        """Whether the booking this intent got was cancelled for sure (a 200 to a cancel)."""
        last = self.last(intent, Action.CANCEL)
        return last is not None and last.outcome is Outcome.OK

    def unsettled(self, intents: Iterable[Intent], action: Action = Action.BOOK) -> list[Intent]:
        """Intents whose last answer leaves open whether they booked (or cancelled)."""
        return [i for i in intents if (last := self.last(i, action)) is None or not last.settled]

    def outcome_counts(self) -> Counter[Outcome]:
        return Counter(a.outcome for a in self.attempts)

    def booking_ids(self, intent: Intent) -> set[str]:
        """Every booking id a 201 for this intent carried: one, if replays behave."""
        return {a.booking_id for a in self.of(intent) if a.booking_id is not None}


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    detail: str
    booking_id: str | None = None
    reason: str | None = None


def classify(status: int, body: bytes, success: int = 201) -> Answer:
    """What an HTTP answer to a booking request (or a cancel, whose success is 200) tells
    the client."""
    document = _json(body)
    if status == success:
        booking = document.get("booking")
        booking_id = booking.get("id") if isinstance(booking, dict) else None
        if booking_id is None:
            # Booked, but the client cannot tell which booking: as good as no answer.
            return Answer(Outcome.UNKNOWN, "unreadable-201")
        return Answer(Outcome.OK, "booked", booking_id=str(booking_id))
    code = str(document.get("code", f"http-{status}"))
    reason = document.get("detail")
    outcome = Outcome.FAILED if 400 <= status < 500 else Outcome.UNKNOWN
    return Answer(outcome, code, reason=str(reason) if reason is not None else None)


def _json(body: bytes) -> dict[str, object]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


class BookingClient:
    """Sends booking requests and cancellations and records every one of them in a History."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: Callable[[str], str],
        history: History,
        *,
        timeout: float,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.history = history
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        # Requests sent and not answered yet: a fault struck now meets some of them.
        self._in_flight = 0
        self._sending = asyncio.Event()

    async def requests_in_flight(self) -> None:
        """Until some request is sent and not answered yet."""
        await self._sending.wait()

    async def send(self, intent: Intent, phase: str) -> Attempt:
        path = f"/v1/schedules/{intent.schedule_id}/bookings"
        return await self._post(intent, phase, Action.BOOK, path, {"Idempotency-Key": intent.key})

    async def cancel(self, intent: Intent, booking_id: str, phase: str) -> Attempt:
        """Cancel the booking `intent` got (cancelling twice changes nothing)."""
        path = f"/v1/bookings/{booking_id}/cancel"
        return await self._post(intent, phase, Action.CANCEL, path, {}, booking_id)

    async def _post(
        self,
        intent: Intent,
        phase: str,
        action: Action,
        path: str,
        extra_headers: dict[str, str],
        booking_id: str | None = None,
    ) -> Attempt:
        headers = {"Authorization": f"Bearer {self.token(intent.patient_id)}", **extra_headers}
        success = 201 if action is Action.BOOK else 200
        started = time.monotonic()
        status: int | None = None
        self._in_flight += 1
        self._sending.set()
        try:
            async with self.session.post(
                self.base_url + path, json={}, headers=headers, timeout=self.timeout
            ) as response:
                status = response.status
                body = await response.read()
            answer = classify(status, body, success)
        except aiohttp.ClientConnectorError as exc:
            # Refused before a byte was sent: this request certainly changed nothing.
            answer = Answer(Outcome.FAILED, type(exc).__name__)
        except (aiohttp.ClientError, TimeoutError) as exc:
            answer = Answer(Outcome.UNKNOWN, type(exc).__name__)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._sending.clear()
        attempt = Attempt(
            intent,
            phase,
            started,
            time.monotonic(),
            answer.outcome,
            status,
            answer.detail,
            answer.booking_id or booking_id,
            answer.reason,
            action,
        )
        self.history.add(attempt)
        return attempt

    async def send_until_settled(
        self,
        intent: Intent,
        phase: str,
        *,
        attempts: int | None,
        deadline: float,
        max_pause: float = 1.0,
    ) -> Attempt:
        """Send, and resend with the same key while the answer leaves the outcome open: up to
        `attempts` times (None: no limit) and never after `deadline` (time.monotonic())."""
        return await _until_settled(
            lambda: self.send(intent, phase),
            attempts=attempts,
            deadline=deadline,
            max_pause=max_pause,
        )

    async def cancel_until_settled(
        self, intent: Intent, booking_id: str, phase: str, *, deadline: float
    ) -> Attempt:
        """Cancel, and cancel again while the answer leaves the outcome open."""
        return await _until_settled(
            lambda: self.cancel(intent, booking_id, phase), attempts=None, deadline=deadline
        )


async def _until_settled(
    send: Callable[[], Awaitable[Attempt]],
    *,
    attempts: int | None,
    deadline: float,
    max_pause: float = 1.0,
) -> Attempt:
    pause = 0.1
    attempt = await send()
    sent = 1
    while not attempt.settled and (attempts is None or sent < attempts):
        if time.monotonic() + pause > deadline:
            break
        await asyncio.sleep(pause)
        pause = min(pause * 2, max_pause)
        attempt = await send()
        sent += 1
    return attempt
