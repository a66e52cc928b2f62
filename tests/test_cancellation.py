"""Cancelled at any await (its client gone, its deadline passed), a booking or a cancel
leaves nothing half-written: what the ledger holds is whole, and once the leases left
behind have run out every number and every patient's day is as the ledger says."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from core.booking import BookingService
from core.domain import BookingStatus, Code
from core.errors import SlotrushError
from core.settings import Settings
from core.stores import Stores
from tests.invariants import audit_violations
from tests.scenarios import create, schedule_in

T = TypeVar("T")

# Cut off after 0, 0.5, 1, ... 15.5 ms: before, during and after every round trip of one
# booking or cancel on this machine.
DELAYS = [i / 2000 for i in range(32)]


async def cut_off(call: Awaitable[T], after: float) -> None:
    task = asyncio.ensure_future(call)
    await asyncio.sleep(after)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, SlotrushError):
        await task


async def test_bookings_and_cancels_cut_off_at_any_await_leave_nothing_half_written(
    service: BookingService, stores: Stores, settings: Settings
) -> None:
    capacity = 2 * len(DELAYS)
    first, second = await create(
        service, schedule_in(capacity=capacity), schedule_in(capacity=capacity, doctor_id="doc2")
    )
    for i, delay in enumerate(DELAYS):
        await cut_off(service.book(f"booker-{i}", first), delay)
    held = [(await service.book(f"canceller-{i}", first)).booking for i in range(len(DELAYS))]
    for booking, delay in zip(held, DELAYS, strict=True):
        await cut_off(service.cancel(booking.patient_id, booking.id), delay)

    # Leases left behind are the reconciler's: they run out and are settled.
    await asyncio.sleep(settings.lease_seconds + 5 * settings.reconcile_interval)
    audit = await stores.ledger.audit()
    assert audit_violations(audit) == []
    patients = [f"booker-{i}" for i in range(len(DELAYS))] + [b.patient_id for b in held]
    active = {
        patient
        for patient in patients
        for booking in await stores.ledger.patient_bookings(patient, before=None, limit=100)
        if booking.status is BookingStatus.BOOKED
    }

    # Every patient's day is as the ledger says: one department, so one booking a day.
    for patient in patients:
        expected = Code.DEPARTMENT_LIMIT if patient in active else "booked"
        assert await answer(service, patient, second) == expected, patient
    # Every number the ledger does not hold is bookable again, and no more.
    newcomers = [await answer(service, f"newcomer-{i}", first) for i in range(capacity)]
    assert newcomers.count("booked") == capacity - len(active)
    assert set(newcomers) <= {"booked", Code.SOLD_OUT}


async def answer(service: BookingService, patient: str, schedule_id: int) -> str:
    try:
        await service.book(patient, schedule_id)
    except SlotrushError as exc:
        return exc.code.value
    return "booked"
