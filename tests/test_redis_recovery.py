"""Crash safety of the Redis strategies, against real servers: leases of writers that died are
settled by the reconciler, lost Redis state is rebuilt from the ledger without overselling,
and Redis follows the ledger when rules, blacklists or schedules change."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bench.embedded import EmbeddedRedis
from core.booking import BookingService
from core.domain import Booking, BookingRequest, Code, Rejected, Rules, Schedule, ScheduleIn
from core.keys import slot_tag
from core.settings import Settings
from core.stores import Stores
from strategies.redis_gate.gate import RedisGate
from strategies.redis_gate.lease import Lease
from tests.conftest import StrategyFactory, open_test_stores
from tests.invariants import Observed, violations
from tests.polling import eventually
from tests.scenarios import HOSPITAL, numbers, schedule_in


@pytest.fixture
def booking_service(gate: RedisGate, stores: Stores) -> BookingService:
    return BookingService(gate, stores.ledger)


async def create(service: BookingService, *items: ScheduleIn) -> list[Schedule]:
    return [view.schedule for view in await service.create_schedules(items)]


def attempt(schedule: Schedule, patient_id: str, key: str | None = None) -> BookingRequest:
    return BookingRequest(schedule, patient_id, str(uuid.uuid4()), key)


def reconciler_actions(gate: RedisGate, action: str) -> float:
    labels = {"strategy": gate.name, "action": action}
    return REGISTRY.get_sample_value("slotrush_reconciler_actions_total", labels) or 0.0


async def confirmed(observed: Observed, count: int) -> None:
    """Wait until the clients were given `count` bookings."""

    async def enough() -> bool:
        return len(observed.confirmed) >= count

    await eventually(enough, 30, f"{count} bookings confirmed", poll=0.001)


async def settled(gate: RedisGate, lease: Lease) -> None:
    """Wait until a reconciler has settled the lease (it first has to expire)."""

    async def gone() -> bool:
        return not await gate.stores.redis.hexists(lease.slot.lease_records, lease.id)

    within = gate.settings.lease_seconds + 10 * gate.settings.reconcile_interval
    await eventually(gone, within, f"lease {lease.id} settled")


async def counted(gate: RedisGate, action: str, expected: float) -> None:
    """The reconciler counts an action once Redis answered it: wait for the count, then make
    sure it does not go past (the same lease settled twice)."""

    async def reached() -> bool:
        return reconciler_actions(gate, action) >= expected

    await eventually(reached, 1.0, f"{action} counted {expected}")
    await asyncio.sleep(5 * gate.settings.reconcile_interval)
    assert reconciler_actions(gate, action) == expected


async def free_numbers(gate: RedisGate, lease: Lease) -> int:
    return int(await gate.stores.redis.bitcount(lease.free))


async def forget_redis_state(stores: Stores) -> None:
    """Lose everything this test keeps in Redis (its own prefix only: the server is shared)."""
    pattern = f"{stores.settings.redis_prefix}:*"
    keys = [key async for key in stores.redis.scan_iter(match=pattern, count=1000)]
    if keys:
        await stores.redis.delete(*keys)


async def steady_crowd(
    service: BookingService,
    observed: Observed,
    schedule: Schedule,
    *,
    patients: int,
    seconds: float,
) -> None:
    """Distinct patients book one schedule, arriving evenly over `seconds`: bookings are in
    flight at any moment of it."""

    async def patient(i: int) -> None:
        await asyncio.sleep(i * seconds / patients)
        await observed.book(service, f"p{i}", schedule.id)

    await asyncio.gather(*(patient(i) for i in range(patients)))


async def book_until_sold_out(
    service: BookingService, observed: Observed, schedule: Schedule, *, tries: int
) -> None:
    """Newcomers book one by one until the schedule answers sold out (a busy is retried)."""
    for newcomer in range(tries):
        answer = await observed.book(service, f"late{newcomer}", schedule.id)
        if answer is Code.SOLD_OUT:
            return
    pytest.fail(f"{schedule.id} did not sell out within {tries} attempts")


# --- leases of writers that died ---------------------------------------------------------


async def test_take_without_ledger_write_is_given_back(
    gate: RedisGate, booking_service: BookingService, stores: Stores
) -> None:
    first, other_department = await create(
        booking_service,
        schedule_in(capacity=2),
        schedule_in(department_id="d2", doctor_id="doc2", capacity=1),
    )
    given_back = reconciler_actions(gate, "given_back")

    # The writer "dies" between the take and the ledger write.
    lease = await gate.take(attempt(first, "ghost"))
    assert isinstance(lease, Lease)
    await settled(gate, lease)

    await counted(gate, "given_back", given_back + 1)
    assert await stores.ledger.booking_by_request(first.hospital_id, lease.id) is None
    # The number and the ghost's counters are back: the ghost books this schedule and one
    # more department (2 a day), and the numbers fill the schedule exactly.
    ghost = await gate.book(attempt(first, "ghost"))
    other = await gate.book(attempt(first, "other"))
    assert isinstance(ghost, Booking)
    assert isinstance(other, Booking)
    assert {ghost.number, other.number} == {1, 2}
    assert await gate.book(attempt(first, "late")) == Rejected(Code.SOLD_OUT)
    assert isinstance(await gate.book(attempt(other_department, "ghost")), Booking)


async def test_a_writer_waking_after_its_lease_was_given_back_cannot_write(
    gate: RedisGate, booking_service: BookingService, stores: Stores
) -> None:
    (schedule,) = await create(booking_service, schedule_in(capacity=1))
    stalled = await gate.take(attempt(schedule, "slow"))
    assert isinstance(stalled, Lease)
    await settled(gate, stalled)
    taker = await gate.book(attempt(schedule, "fast"))
    assert isinstance(taker, Booking)
    assert taker.number == stalled.number

    assert await gate._write(stalled) is None  # past its deadline: the ledger refuses it
    assert (await stores.ledger.audit()).schedules[0].booked == 1


async def test_lease_whose_row_was_written_is_confirmed_not_given_back(
    gate: RedisGate, booking_service: BookingService
) -> None:
    (schedule,) = await create(booking_service, schedule_in(capacity=2))
    confirmed = reconciler_actions(gate, "confirmed")

    # The writer "dies" after the ledger write, before settling the lease in Redis.
    lease = await gate.take(attempt(schedule, "ghost"))
    assert isinstance(lease, Lease)
    assert isinstance(await gate._write(lease), Booking)
    await settled(gate, lease)

    await counted(gate, "confirmed", confirmed + 1)
    other = await gate.book(attempt(schedule, "other"))
    assert isinstance(other, Booking)
    assert other.number != lease.number
    assert await gate.book(attempt(schedule, "late")) == Rejected(Code.SOLD_OUT)


async def test_reconcilers_of_two_processes_give_a_number_back_once(
    gate_class: type[RedisGate], make_strategy: StrategyFactory, stores: Stores
) -> None:
    one, two = [await make_strategy(gate_class) for _ in range(2)]
    assert isinstance(one, RedisGate)
    assert isinstance(two, RedisGate)
    (schedule,) = await create(BookingService(one, stores.ledger), schedule_in(capacity=3))
    given_back = reconciler_actions(one, "given_back")

    lease = await one.take(attempt(schedule, "ghost"))
    assert isinstance(lease, Lease)
    await settled(two, lease)

    await counted(one, "given_back", given_back + 1)
    assert await free_numbers(one, lease) == 3


async def test_a_resent_take_takes_one_number(
    gate: RedisGate, booking_service: BookingService
) -> None:
    (schedule,) = await create(booking_service, schedule_in(capacity=3))
    req = attempt(schedule, "alice")

    first = await gate.take(req)
    again = await gate.take(req)
    booked = await gate.book(req)  # the same request once more, now through to the ledger

    assert isinstance(first, Lease)
    assert isinstance(again, Lease)
    assert isinstance(booked, Booking)
    assert first.number == again.number == booked.number
    others = [await gate.book(attempt(schedule, p)) for p in ("bob", "carol")]
    assert sorted(b.number for b in others if isinstance(b, Booking)) == sorted(
        {1, 2, 3} - {booked.number}
    )
    assert await gate.book(attempt(schedule, "dave")) == Rejected(Code.SOLD_OUT)


# --- the ledger refuses or the Redis copy diverged -----------------------------------------


async def test_a_refused_ledger_write_gives_the_number_back(
    gate: RedisGate, booking_service: BookingService
) -> None:
    first, second, third = await create(
        booking_service,
        schedule_in(capacity=5),
        schedule_in(department_id="d2", doctor_id="doc2", capacity=1),
        schedule_in(department_id="d3", doctor_id="doc3", capacity=1),
    )
    await booking_service.book("alice", first.id, "key-1")

    # Past the core's replay check: the ledger refuses the reused key after the take.
    reused = await gate.book(attempt(second, "alice", "key-1"))

    assert reused == Rejected(Code.IDEMPOTENCY_CONFLICT)
    # The number is back, and alice's day count too (she may still book a second one).
    bob = await gate.book(attempt(second, "bob"))
    assert isinstance(bob, Booking)
    assert bob.number == 1
    assert isinstance(await gate.book(attempt(third, "alice")), Booking)


async def test_a_number_redis_offers_but_the_ledger_holds_is_dropped(
    gate: RedisGate, booking_service: BookingService, stores: Stores
) -> None:
    (schedule,) = await create(booking_service, schedule_in(capacity=1))
    held = await gate.book(attempt(schedule, "alice"))
    assert isinstance(held, Booking)
    labels = {"strategy": gate.name, "reason": "redis_diverged"}
    diverged = REGISTRY.get_sample_value("slotrush_strategy_retries_total", labels) or 0.0

    # Redis offers the held number again although the ledger did not cancel: it diverged.
    slot = gate.slot_keys(slot_tag(HOSPITAL, schedule.visit_date))
    await stores.redis.setbit(slot.free(schedule.id), held.number, 1)

    # Bob is offered the held number, the ledger refuses it, and Redis drops it for good.
    assert await gate.book(attempt(schedule, "bob")) == Rejected(Code.SOLD_OUT)
    assert REGISTRY.get_sample_value("slotrush_strategy_retries_total", labels) == diverged + 1
    assert (await stores.ledger.audit()).schedules[0].booked == 1
    # Bob's counters went back with the take: a real cancellation makes the number his.
    await booking_service.cancel("alice", held.id)
    bob = await gate.book(attempt(schedule, "bob"))
    assert isinstance(bob, Booking)
    assert bob.number == held.number


# --- lost Redis state ----------------------------------------------------------------------


async def test_redis_state_lost_during_a_crowd_is_rebuilt_without_overselling(
    gate: RedisGate, booking_service: BookingService, stores: Stores
) -> None:
    capacity = 40
    (schedule,) = await create(booking_service, schedule_in(capacity=capacity))
    observed = Observed()
    rebuilt: list[float] = []

    async def lose_state_after_some_bookings() -> None:
        await confirmed(observed, 10)
        rebuilt.append(reconciler_actions(gate, "rebuilt"))
        await forget_redis_state(stores)

    await asyncio.gather(
        lose_state_after_some_bookings(),
        steady_crowd(booking_service, observed, schedule, patients=120, seconds=0.3),
    )

    assert reconciler_actions(gate, "rebuilt") > rebuilt[0], "the crowd never saw the loss"
    assert await violations(stores.ledger, observed, allowed={Code.SOLD_OUT.value}) == []
    await book_until_sold_out(booking_service, observed, schedule, tries=capacity + 1)
    assert numbers(observed.held, schedule.id) == list(range(1, capacity + 1))
    assert await violations(stores.ledger, observed) == []


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def restartable_stores(
    settings: Settings, embedded_redis: EmbeddedRedis, test_database_url: str
) -> AsyncIterator[Stores]:
    async with open_test_stores(settings, embedded_redis.url, test_database_url) as opened:
        yield opened


async def test_a_redis_restarted_empty_during_a_crowd_is_rebuilt(
    gate_class: type[RedisGate], restartable_stores: Stores, embedded_redis: EmbeddedRedis
) -> None:
    capacity = 30
    gate = gate_class(restartable_stores)
    await gate.start()
    try:
        service = BookingService(gate, restartable_stores.ledger)
        (schedule,) = await create(service, schedule_in(capacity=capacity))
        observed = Observed()

        rebuilt: list[float] = []

        async def restart_after_some_bookings() -> None:
            await confirmed(observed, 5)
            rebuilt.append(reconciler_actions(gate, "rebuilt"))
            # Without persistence: the data and the loaded scripts are gone.
            await asyncio.to_thread(embedded_redis.restart)

        await asyncio.gather(
            restart_after_some_bookings(),
            steady_crowd(service, observed, schedule, patients=120, seconds=1.0),
        )

        assert reconciler_actions(gate, "rebuilt") > rebuilt[0], "the crowd never saw it"
        allowed = {Code.SOLD_OUT.value, Code.BUSY.value}
        assert await violations(restartable_stores.ledger, observed, allowed=allowed) == []
        # Stale pooled connections answer busy once each; then booking goes on.
        await book_until_sold_out(service, observed, schedule, tries=capacity + 20)
        assert numbers(observed.held, schedule.id) == list(range(1, capacity + 1))
        assert await violations(restartable_stores.ledger, observed, allowed=allowed) == []
    finally:
        await gate.close()


# --- Redis follows the ledger --------------------------------------------------------------


async def test_rule_and_blacklist_changes_reach_a_loaded_slot(
    gate: RedisGate, booking_service: BookingService
) -> None:
    first, second, third = await create(
        booking_service,
        *(schedule_in(department_id=f"d{i}", doctor_id=f"doc{i}", capacity=5) for i in range(3)),
    )
    await booking_service.book("alice", first.id)  # loads the slot

    await booking_service.put_rules(HOSPITAL, Rules(max_per_day=1))
    await booking_service.put_blacklist(
        HOSPITAL, "mallory", dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    )

    assert await gate.book(attempt(second, "alice")) == Rejected(Code.DAILY_LIMIT)
    assert await gate.book(attempt(second, "mallory")) == Rejected(Code.BLACKLISTED)
    await booking_service.put_rules(HOSPITAL, Rules(max_per_day=2))
    await booking_service.delete_blacklist(HOSPITAL, "mallory")
    assert isinstance(await gate.book(attempt(second, "alice")), Booking)
    assert isinstance(await gate.book(attempt(third, "mallory")), Booking)


async def test_a_schedule_created_in_a_loaded_slot_is_added_to_it(
    gate: RedisGate, booking_service: BookingService
) -> None:
    (first,) = await create(booking_service, schedule_in(capacity=1))
    await booking_service.book("alice", first.id)  # loads the slot
    rebuilt = reconciler_actions(gate, "rebuilt")

    (second,) = await create(booking_service, schedule_in(doctor_id="doc2", capacity=2))

    taken = [await gate.book(attempt(second, p)) for p in ("bob", "carol", "dave")]
    assert [b.number if isinstance(b, Booking) else b for b in taken] == [
        1,
        2,
        Rejected(Code.SOLD_OUT),
    ]
    assert reconciler_actions(gate, "rebuilt") == rebuilt  # no reload was needed


async def test_a_schedule_created_in_an_unloaded_slot_loads_it_before_any_booking(
    gate: RedisGate, booking_service: BookingService, stores: Stores
) -> None:
    rebuilt = reconciler_actions(gate, "rebuilt")
    (schedule,) = await create(booking_service, schedule_in(capacity=2))

    # Loaded at creation, so the first booking after the opening does not load it; not a
    # rebuild, since nothing was lost.
    slot = gate.slot_keys(slot_tag(schedule.hospital_id, schedule.visit_date))
    assert await stores.redis.exists(slot.slot, slot.free(schedule.id)) == 2
    assert reconciler_actions(gate, "rebuilt") == rebuilt
    taken = [await gate.book(attempt(schedule, p)) for p in ("bob", "carol", "dave")]
    assert [b.number if isinstance(b, Booking) else b for b in taken] == [
        1,
        2,
        Rejected(Code.SOLD_OUT),
    ]
    assert reconciler_actions(gate, "rebuilt") == rebuilt
