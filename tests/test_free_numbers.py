"""The Redis gates keep a schedule's free numbers as a bitmap: one bit per number (issue 12),
the lowest free one taken first, and a reload from the ledger sets exactly the free ones."""

from __future__ import annotations

import pytest

from core.booking import BookingService
from core.domain import Booking, Schedule
from core.keys import slot_tag
from core.stores import Stores
from strategies.redis_gate.gate import RedisGate
from tests.scenarios import schedule_in
from tests.test_redis_recovery import attempt, create, forget_redis_state


@pytest.fixture
def booking_service(gate: RedisGate, stores: Stores) -> BookingService:
    return BookingService(gate, stores.ledger)


def free_key(gate: RedisGate, schedule: Schedule) -> str:
    return gate.slot_keys(slot_tag(schedule.hospital_id, schedule.visit_date)).free(schedule.id)


async def book(gate: RedisGate, schedule: Schedule, patient_id: str) -> Booking:
    booked = await gate.book(attempt(schedule, patient_id))
    assert isinstance(booked, Booking), booked
    return booked


async def test_a_free_number_costs_redis_at_most_one_byte(
    gate: RedisGate, booking_service: BookingService
) -> None:
    (schedule,) = await create(booking_service, schedule_in(capacity=100_000))
    await book(gate, schedule, "alice")  # loads the slot

    key = free_key(gate, schedule)
    redis = gate.stores.redis
    assert await redis.bitcount(key) == 99_999
    used = await redis.memory_usage(key, samples=0)
    assert used <= 99_999, f"{used} bytes for 99,999 free numbers"


@pytest.mark.parametrize("capacity", [1, 7, 8, 9, 16, 17, 1000])
async def test_a_loaded_schedule_offers_each_of_its_numbers_once_lowest_first(
    gate: RedisGate, booking_service: BookingService, capacity: int
) -> None:
    # Capacities around byte boundaries: the load sets whole bytes and single bits apart.
    (schedule,) = await create(booking_service, schedule_in(capacity=capacity))
    first = await book(gate, schedule, "p-0")
    assert first.number == 1
    assert await gate.stores.redis.bitcount(free_key(gate, schedule)) == capacity - 1
    taken = [(await book(gate, schedule, f"p-{i}")).number for i in range(1, min(capacity, 20))]
    assert taken == list(range(2, 2 + len(taken)))


async def test_a_reload_sets_exactly_the_numbers_the_ledger_has_free(
    gate: RedisGate, booking_service: BookingService
) -> None:
    (schedule,) = await create(booking_service, schedule_in(capacity=20))
    booked = [await book(gate, schedule, f"p-{i}") for i in range(12)]
    for cancelled in (booked[1], booked[9]):
        await booking_service.cancel(cancelled.patient_id, cancelled.id)

    await forget_redis_state(gate.stores)
    retaken = [(await book(gate, schedule, f"q-{i}")).number for i in range(3)]

    assert retaken == [2, 10, 13]
    assert await gate.stores.redis.bitcount(free_key(gate, schedule)) == 20 - 13
