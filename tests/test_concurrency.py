"""Concurrent crowds against every strategy: the invariants of API.md hold, and nothing that
should have been sold was held back."""

from __future__ import annotations

from collections import Counter

import pytest

from core.booking import BookingService
from core.domain import Code
from core.stores import Stores
from tests.conftest import WITH_CLUSTER, strategy_cases
from tests.invariants import Observed, violations
from tests.scenarios import (
    churn,
    contention_answers,
    double_submit,
    flash_crowd,
    numbers,
    patients_race_schedules,
)

# The Redis gates run this suite on a Redis Cluster too.
strategy_case = strategy_cases(WITH_CLUSTER)


def held_per_patient(observed: Observed) -> Counter[str]:
    return Counter(b.patient_id for b in observed.held)


def gave_up(observed: Observed) -> bool:
    return observed.codes()[Code.BUSY.value] > 0


@pytest.mark.parametrize("capacity", [1, 10, 50])
async def test_flash_crowd_sells_every_number_exactly_once(
    service: BookingService, stores: Stores, strategy_name: str, capacity: int
) -> None:
    observed = Observed()
    schedule_id = await flash_crowd(service, observed, capacity=capacity, crowd=10 * capacity)

    allowed = contention_answers(strategy_name, Code.SOLD_OUT)
    assert await violations(stores.ledger, observed, allowed=allowed) == []
    sold = numbers(observed.held, schedule_id)
    assert sold, "nobody in the crowd got a number"
    if not gave_up(observed):
        assert sold == list(range(1, capacity + 1))


@pytest.mark.parametrize(
    ("departments", "limit", "refusal"),
    [
        # Default rules: one booking per department per day ...
        (["d1", "d1", "d1", "d1"], 1, Code.DEPARTMENT_LIMIT),
        # ... and two per hospital per day.
        (["d1", "d2", "d3", "d4"], 2, Code.DAILY_LIMIT),
    ],
    ids=["one-department", "four-departments"],
)
async def test_patient_racing_schedules_stays_within_limits(
    service: BookingService,
    stores: Stores,
    strategy_name: str,
    departments: list[str],
    limit: int,
    refusal: Code,
) -> None:
    observed = Observed()
    await patients_race_schedules(service, observed, departments=departments, patients=5)

    allowed = contention_answers(strategy_name, refusal)
    assert await violations(stores.ledger, observed, allowed=allowed) == []
    per_patient = held_per_patient(observed)
    assert max(per_patient.values()) <= limit
    if not gave_up(observed):
        assert per_patient == {f"p{p}": limit for p in range(5)}


async def test_double_submit_books_once(
    service: BookingService, stores: Stores, strategy_name: str
) -> None:
    observed = Observed()
    await double_submit(service, observed, patients=5, repeats=20)

    allowed = contention_answers(strategy_name, Code.ALREADY_BOOKED)
    assert await violations(stores.ledger, observed, allowed=allowed) == []
    per_patient = held_per_patient(observed)
    assert max(per_patient.values()) == 1
    if not gave_up(observed):
        assert len(per_patient) == 5


async def test_cancel_rebook_churn_keeps_invariants_and_returns_numbers(
    service: BookingService, stores: Stores, strategy_name: str
) -> None:
    observed = Observed()
    capacity = 5
    schedule_id = await churn(service, observed, capacity=capacity, patients=12, rounds=4)

    allowed = contention_answers(strategy_name, Code.SOLD_OUT)
    assert await violations(stores.ledger, observed, allowed=allowed) == []
    assert observed.cancelled, "the churn cancelled nothing"

    # Invariant 7: every number given back during the churn can be booked again.
    free = capacity - len(numbers(observed.held, schedule_id))
    for newcomer in range(free):
        await observed.book(service, f"late{newcomer}", schedule_id)
    assert numbers(observed.held, schedule_id) == list(range(1, capacity + 1))
    assert await observed.book(service, "one-too-many", schedule_id) is Code.SOLD_OUT
    assert await violations(stores.ledger, observed) == []
