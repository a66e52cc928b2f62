"""Schedules to book and the concurrent crowds that book them.

Shared by the concurrency suite and by the test that runs the same crowds against the racy
strategy: the checks are only trustworthy if the very same scenarios make them fail there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Iterable
from dataclasses import replace
from typing import TypeVar

from core.booking import BookingService
from core.domain import Booking, Code, Period, ScheduleIn
from tests.invariants import Observed

T = TypeVar("T")

# A week ahead, so no cancel cutoff and no opening time gets in the way unless a test wants it.
VISIT_DATE = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)


def utc_today() -> dt.date:
    """The UTC date now, asked at each use: a date taken when the module loads is yesterday
    for the tests that run after midnight (the suite takes minutes)."""
    return dt.datetime.now(dt.UTC).date()


HOSPITAL = "h1"

# Strategies whose design gives up under contention and answers busy (DESIGN.md: pg-optimistic
# "after the retries it answers busy"). Every other strategy must never answer busy here.
GIVES_UP_UNDER_CONTENTION = frozenset({"pg-optimistic"})


def schedule_in(**overrides: object) -> ScheduleIn:
    base = ScheduleIn(
        hospital_id=HOSPITAL,
        department_id="d1",
        doctor_id="doc1",
        visit_date=VISIT_DATE,
        period=Period.AM,
        capacity=1,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


async def create(service: BookingService, *items: ScheduleIn) -> list[int]:
    return [view.schedule.id for view in await service.create_schedules(items)]


async def all_at_once(calls: Iterable[Awaitable[T]]) -> list[T]:
    return await asyncio.gather(*calls)


def contention_answers(strategy_name: str, *refusals: Code) -> set[str]:
    """The refusals a crowd may get from this strategy besides the ones the scenario causes."""
    allowed = {code.value for code in refusals}
    if strategy_name in GIVES_UP_UNDER_CONTENTION:
        allowed.add(Code.BUSY.value)
    return allowed


async def flash_crowd(
    service: BookingService, observed: Observed, *, capacity: int, crowd: int
) -> int:
    """`crowd` distinct patients book one schedule of `capacity` at the same moment."""
    (schedule_id,) = await create(service, schedule_in(capacity=capacity))
    await all_at_once(observed.book(service, f"p{i}", schedule_id) for i in range(crowd))
    return schedule_id


async def patients_race_schedules(
    service: BookingService, observed: Observed, *, departments: list[str], patients: int
) -> list[int]:
    """Each patient fires at every schedule of one day at once, one schedule per department
    listed (a department may repeat), with room for everyone."""
    items = [
        schedule_in(department_id=dept, doctor_id=f"doc{i}", capacity=patients)
        for i, dept in enumerate(departments)
    ]
    schedule_ids = await create(service, *items)
    await all_at_once(
        observed.book(service, f"p{p}", sid) for p in range(patients) for sid in schedule_ids
    )
    return schedule_ids


async def double_submit(
    service: BookingService, observed: Observed, *, patients: int, repeats: int
) -> int:
    """Each patient presses "book" `repeats` times at once on the same schedule."""
    # Room to spare: a full schedule could rightly answer sold_out instead of already_booked.
    (schedule_id,) = await create(service, schedule_in(capacity=2 * patients))
    await all_at_once(
        observed.book(service, f"p{p}", schedule_id)
        for p in range(patients)
        for _ in range(repeats)
    )
    return schedule_id


async def churn(
    service: BookingService, observed: Observed, *, capacity: int, patients: int, rounds: int
) -> int:
    """Patients book and cancel over and over, all at once; each keeps its last booking."""
    (schedule_id,) = await create(service, schedule_in(capacity=capacity))

    async def patient(name: str) -> None:
        for round_ in range(rounds):
            answer = await observed.book(service, name, schedule_id)
            if isinstance(answer, Booking) and round_ < rounds - 1:
                await observed.cancel(service, name, answer.id)

    await all_at_once(patient(f"p{p}") for p in range(patients))
    return schedule_id


def numbers(bookings: Iterable[Booking], schedule_id: int) -> list[int]:
    return sorted(b.number for b in bookings if b.schedule_id == schedule_id)
