"""pg-batched's own promises, beyond the suites every strategy passes: bookings that arrive
together share one transaction, numbers go in arrival order, batches of overlapping patients
never deadlock, a failed batch answers every member busy and writes nothing, and the
per-schedule batchers stay bounded."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Sequence

import pytest

from bench.phases import PhaseResult
from bench.summary import StrategyResult, targets
from core.booking import BookingService
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected, Rules, Schedule
from core.errors import ServiceUnavailable
from core.stores import Stores
from strategies import pg_batched
from strategies.pg_batched import PgBatched
from tests.conftest import StrategyFactory
from tests.invariants import Observed, violations
from tests.scenarios import HOSPITAL, create, schedule_in


class Recorded:
    """The batches a PgBatched ran, and the most it ran at once for one schedule."""

    def __init__(self, strategy: PgBatched) -> None:
        self.sizes: list[int] = []
        self.running: Counter[int] = Counter()
        self.most_at_once = 0
        run = strategy._book_batch

        async def recorded(batch: Sequence[BookingRequest]) -> list[BookResult]:
            schedule_id = batch[0].schedule.id
            self.sizes.append(len(batch))
            self.running[schedule_id] += 1
            self.most_at_once = max(self.most_at_once, self.running[schedule_id])
            try:
                return await run(batch)
            finally:
                self.running[schedule_id] -= 1

        # Batchers are made on first use, from the attribute as it is then.
        strategy._book_batch = recorded  # type: ignore[method-assign]


@pytest.fixture
async def batched(make_strategy: StrategyFactory) -> PgBatched:
    made = await make_strategy(PgBatched)
    assert isinstance(made, PgBatched)
    return made


@pytest.fixture
def service(batched: PgBatched, stores: Stores) -> BookingService:
    return BookingService(batched, stores.ledger)


async def new_schedule(service: BookingService, capacity: int, department: str = "d1") -> Schedule:
    (schedule_id,) = await create(
        service, schedule_in(capacity=capacity, department_id=department, doctor_id=department)
    )
    return await service.schedule(schedule_id)


def request(schedule: Schedule, patient: str, key: str | None = None) -> BookingRequest:
    return BookingRequest(schedule, patient, str(uuid.uuid4()), key)


async def book_together(strategy: PgBatched, requests: Sequence[BookingRequest]) -> list[object]:
    """Book all at once: they queue in this order before the first batch starts."""
    return await asyncio.gather(*(strategy.book(r) for r in requests), return_exceptions=True)


def answer(result: object) -> int | Code | str:
    """A booking's number, a refusal's code, or the failure's type."""
    if isinstance(result, Booking):
        return result.number
    if isinstance(result, Rejected):
        return result.code
    return type(result).__name__


async def test_a_crowd_shares_one_transaction_and_is_numbered_in_arrival_order(
    batched: PgBatched, service: BookingService
) -> None:
    recorded = Recorded(batched)
    schedule = await new_schedule(service, capacity=3)
    crowd = [request(schedule, f"p{i}") for i in (4, 0, 3, 1, 2)]

    answers = await book_together(batched, crowd)

    assert [answer(a) for a in answers] == [1, 2, 3, Code.SOLD_OUT, Code.SOLD_OUT]
    assert recorded.sizes == [5]
    assert len(batched._batchers) == 0


async def test_a_patient_twice_in_one_batch_books_once(
    batched: PgBatched, service: BookingService
) -> None:
    recorded = Recorded(batched)
    schedule = await new_schedule(service, capacity=5)
    crowd = [
        request(schedule, "a", "key-a"),
        request(schedule, "b"),
        request(schedule, "a", "key-a"),  # the same request resent
        request(schedule, "a", "another-key"),
    ]

    answers = await book_together(batched, crowd)

    assert [answer(a) for a in answers] == [1, 2, Code.ALREADY_BOOKED, Code.ALREADY_BOOKED]
    assert recorded.sizes == [4]


async def test_one_idempotency_key_twice_at_once_gets_one_booking(
    service: BookingService, stores: Stores
) -> None:
    schedule = await new_schedule(service, capacity=5)

    outcomes = await asyncio.gather(*(service.book("a", schedule.id, "key-a") for _ in range(3)))

    assert len({o.booking.id for o in outcomes}) == 1
    assert sum(not o.replayed for o in outcomes) == 1
    assert await stores.ledger.remaining(schedule) == 4


async def test_rules_are_checked_per_patient_inside_the_batch(
    batched: PgBatched, service: BookingService, stores: Stores
) -> None:
    await service.put_rules(HOSPITAL, Rules(max_per_day=2, max_per_department_per_day=1))
    cardio, skin, eyes, cardio_pm = [
        await new_schedule(service, capacity=5, department=d)
        for d in ("cardio", "skin", "eyes", "cardio")
    ]
    await service.put_blacklist(HOSPITAL, "banned", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    for already in (request(cardio, "two-today"), request(skin, "two-today"), request(cardio, "c")):
        assert isinstance(await batched.book(already), Booking)
    crowd = ["banned", "two-today", "c", "fresh"]

    on_cardio = await book_together(batched, [request(cardio_pm, p) for p in crowd])
    on_eyes = await book_together(batched, [request(eyes, p) for p in crowd])

    limits = [Code.BLACKLISTED, Code.DAILY_LIMIT]
    assert [answer(a) for a in on_cardio] == [*limits, Code.DEPARTMENT_LIMIT, 1]
    assert [answer(a) for a in on_eyes] == [*limits, 1, 2]


async def test_batches_of_overlapping_patients_on_many_schedules_never_deadlock(
    service: BookingService, stores: Stores
) -> None:
    # Every patient books every schedule, each schedule's crowd in another order, while
    # some patients cancel: any two batches (or a batch and a cancel) share patients.
    patients = [f"p{i}" for i in range(12)]
    await service.put_rules(HOSPITAL, Rules(max_per_day=4, max_per_department_per_day=1))
    schedules = [await new_schedule(service, len(patients), f"d{i}") for i in range(4)]
    observed = Observed()

    def crowd(turn: int) -> list[str]:
        rotated = patients[3 * turn :] + patients[: 3 * turn]
        return rotated[::-1] if turn % 2 else rotated

    # A third of the patients leave in each of the first three rounds; the last only books.
    for round_ in range(4):
        leaving = [b for b in observed.held if int(b.patient_id[1:]) % 3 == round_]
        await asyncio.gather(
            *(observed.cancel(service, b.patient_id, b.id) for b in leaving),
            *(
                observed.book(service, patient, schedule.id)
                for turn, schedule in enumerate(schedules)
                for patient in crowd(turn)
            ),
        )

    allowed = {Code.ALREADY_BOOKED.value}
    assert await violations(stores.ledger, observed, allowed=allowed) == []
    held = {(b.schedule_id, b.patient_id) for b in observed.held}
    assert held == {(s.id, p) for s in schedules for p in patients}


async def test_a_failed_batch_answers_every_member_busy_and_writes_nothing(
    batched: PgBatched, service: BookingService, stores: Stores
) -> None:
    schedule = await new_schedule(service, capacity=5)
    crowd = [request(schedule, p) for p in ("a", "b", "c")]
    async with stores.pg.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM schedules WHERE id = $1 FOR UPDATE", schedule.id)
        booking = asyncio.ensure_future(book_together(batched, crowd))
        # The batch holds its patients' day locks and waits for the schedule: cut it off.
        waiting = None
        while waiting is None:
            await asyncio.sleep(0.01)
            waiting = await holder.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
        await holder.execute("SELECT pg_terminate_backend($1)", waiting)
        answers = await booking

    assert all(isinstance(a, ServiceUnavailable) for a in answers), answers
    assert await stores.ledger.remaining(schedule) == 5
    # Nothing of the batch is left behind: no row, no lock.
    assert [answer(a) for a in await book_together(batched, crowd)] == [1, 2, 3]


async def test_batches_and_batches_in_flight_are_bounded_per_schedule(
    batched: PgBatched, service: BookingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_batched, "_MAX_BATCH", 3)
    recorded = Recorded(batched)
    schedules = [await new_schedule(service, capacity=20, department=f"d{i}") for i in range(5)]

    await asyncio.gather(
        *(book_together(batched, [request(s, f"p{i}") for i in range(20)]) for s in schedules)
    )

    assert sum(recorded.sizes) == 100
    assert max(recorded.sizes) == 3
    assert recorded.most_at_once == pg_batched._IN_FLIGHT_PER_SCHEDULE
    assert len(batched._batchers) == 0


def hot_phase(ratio_to_ceiling: float) -> PhaseResult:
    return PhaseResult("hot", 1, 1, 1.0, 1.0, {}, {}, 0, [], ratio_to_ceiling=ratio_to_ceiling)


@pytest.mark.parametrize(("batched", "met"), [(0.30, True), (0.20, False)])
def test_the_bench_wants_three_times_pg_pessimistic_on_a_hot_schedule(
    batched: float, met: bool
) -> None:
    results = [
        StrategyResult("pg-pessimistic", {"hot": hot_phase(0.08)}),
        StrategyResult("pg-batched", {"hot": hot_phase(batched)}),
    ]

    (found,) = [t for t in targets(results, None) if "pg-pessimistic's" in t["target"]]

    assert (found["strategy"], found["met"]) == ("pg-batched", met)
