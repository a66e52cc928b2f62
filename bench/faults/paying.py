"""The paid crowd: on paid schedules every booking is a hold (API.md 1.1) that its patient
pays for (a checkout at slotrush, then completed at the sandbox provider), or lets lapse;
some cancel what they paid for and are refunded. Each step is retried while the provider or
the server is down, until the hold has lapsed: what went through is recorded, so that the
checks know which end each booking may have come to."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.history import BookingClient

# Pauses between two tries of one payment step: doubling, as a patient's app would back off
# (a crowd retrying at a fixed pace would be a load test of its own).
_FIRST_PAUSE = 0.2
_LONGEST_PAUSE = 1.0
# How long a payer watches for the provider's notice to book the hold.
_NOTICE_SECONDS = 10.0


@dataclass
class Wallet:
    """What the paying crowd did, for the checks."""

    sandbox_url: str
    # How long a hold waits for its payment (the database's payment window).
    window: float
    # Holds whose checkout the patient completed at the provider (paid, as the patient saw).
    completed: set[str] = field(default_factory=set)
    # Holds their owner then saw booked and paid.
    seen_paid: set[str] = field(default_factory=set)
    # Every answer of a payment step: "checkout 201", "complete None ClientConnectorError"...
    answers: Counter[str] = field(default_factory=Counter)

    def endings(self, booking_id: str, cancelled: bool) -> frozenset[str]:
        """The statuses a crowd's booking may end in, by what its patient did."""
        if cancelled:
            return frozenset({"cancelled"})
        if booking_id in self.seen_paid:
            return frozenset({"booked"})
        if booking_id in self.completed:
            # Paid at the provider: booked, unless the notice came after the hold lapsed
            # (then refunded at once).
            return frozenset({"booked", "expired"})
        return frozenset({"expired"})


async def pay(client: BookingClient, wallet: Wallet, patient_id: str, booking_id: str) -> bool:
    """Pay for a hold: checkout, complete it at the provider, then wait for the notice to
    book it. Whether the owner saw it booked and paid."""
    lapses = time.monotonic() + wallet.window
    ref = await _until(
        wallet, "checkout", lapses, lambda: _checkout(client, patient_id, booking_id)
    )
    if ref is None:
        return False
    if not await _until(wallet, "complete", lapses, lambda: _complete(client, wallet, ref)):
        return False
    wallet.completed.add(booking_id)
    deadline = time.monotonic() + _NOTICE_SECONDS
    for pause in _pauses():
        booking = await _read(client, patient_id, booking_id)
        if booking is not None and booking["status"] != "pending_payment":
            if booking["status"] == "booked" and booking["payment"]["status"] == "paid":
                wallet.seen_paid.add(booking_id)
                return True
            return False
        if time.monotonic() + pause > deadline:
            return False
        await asyncio.sleep(pause)
    return False


async def _until(wallet: Wallet, step: str, deadline: float, attempt: Any) -> Any:
    """Try `attempt` until it answers something other than None, or the deadline."""
    for pause in _pauses():
        try:
            status, value = await attempt()
            wallet.answers[f"{step} {status}"] += 1
            if value is not None:
                return value
            if status == 409:
                return None  # the hold lapsed, or is paid already: nothing left to do
        except (aiohttp.ClientError, TimeoutError) as exc:
            wallet.answers[f"{step} None {type(exc).__name__}"] += 1
        if time.monotonic() + pause > deadline:
            return None
        await asyncio.sleep(pause)
    return None


def _pauses() -> Iterator[float]:
    pause = _FIRST_PAUSE
    while True:
        yield pause
        pause = min(2 * pause, _LONGEST_PAUSE)


async def _checkout(
    client: BookingClient, patient_id: str, booking_id: str
) -> tuple[int, str | None]:
    async with client.session.post(
        f"{client.base_url}/v1/bookings/{booking_id}/payments",
        json={},
        headers=_auth(client, patient_id),
        timeout=client.timeout,
    ) as answer:
        body = await answer.json(content_type=None)
        if answer.status == 201:
            return answer.status, str(body["payment"]["provider_ref"])
        return answer.status, None


async def _complete(client: BookingClient, wallet: Wallet, ref: str) -> tuple[int, bool | None]:
    async with client.session.post(
        f"{wallet.sandbox_url}/checkouts/{ref}/complete",
        json={"outcome": "succeeded"},
        timeout=client.timeout,
    ) as answer:
        text = await answer.text()
        # 409 "already succeeded": an earlier try went through, its answer lost.
        done = answer.status == 200 or (answer.status == 409 and "succeeded" in text)
        return answer.status, True if done else None


async def _read(client: BookingClient, patient_id: str, booking_id: str) -> dict[str, Any] | None:
    try:
        async with client.session.get(
            f"{client.base_url}/v1/bookings/{booking_id}",
            headers=_auth(client, patient_id),
            timeout=client.timeout,
        ) as answer:
            if answer.status != 200:
                return None
            booking: dict[str, Any] = (await answer.json())["booking"]
            return booking
    except (aiohttp.ClientError, TimeoutError):
        return None


def _auth(client: BookingClient, patient_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token(patient_id)}"}
