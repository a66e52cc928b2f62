"""The ledger's constraints are the last line of defence: rows written by hand that break an
invariant are refused, each by the constraint meant for it, and only those rows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest

from core.domain import Period, Schedule, ScheduleIn
from core.stores import Stores
from tests.planner_statistics import analyzed

CAPACITY = 2
NOW = dt.datetime.now(dt.UTC)

Unique = asyncpg.exceptions.UniqueViolationError
ForeignKey = asyncpg.exceptions.ForeignKeyViolationError
Check = asyncpg.exceptions.CheckViolationError


@pytest.fixture
async def schedule(stores: Stores) -> Schedule:
    item = ScheduleIn("h1", "d1", "doc1", NOW.date(), Period.AM, capacity=CAPACITY)
    (created,) = await stores.ledger.create_schedules([item], NOW)
    return created


def booking_row(schedule: Schedule, **overrides: Any) -> dict[str, Any]:
    """A valid active booking of number 1 by alice, with some columns replaced."""
    row: dict[str, Any] = {
        "schedule_id": schedule.id,
        "patient_id": "alice",
        "hospital_id": schedule.hospital_id,
        "department_id": schedule.department_id,
        "doctor_id": schedule.doctor_id,
        "visit_date": schedule.visit_date,
        "period": schedule.period.value,
        "fee_cents": schedule.fee_cents,
        "number": 1,
        "verification_code": "ABCDEFGH",
        "request_id": uuid.uuid4(),
        "idempotency_key": None,
        "status": "booked",
        "cancelled_at": None,
    }
    return row | overrides


async def insert_booking(pool: asyncpg.Pool | asyncpg.Connection, row: dict[str, Any]) -> int:
    columns = ", ".join(row)
    params = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    sql = f"INSERT INTO bookings ({columns}) VALUES ({params}) RETURNING id"
    return int(await pool.fetchval(sql, *row.values()))


CANCELLED = {"status": "cancelled", "cancelled_at": NOW}
PENDING = {"status": "pending_payment", "hold_expires_at": NOW}
SAME_REQUEST = uuid.UUID(int=7)


@pytest.mark.parametrize(
    ("first", "second", "error", "constraint"),
    [
        pytest.param(
            {}, {"patient_id": "bob"}, Unique, "bookings_held_number", id="number-held-twice"
        ),
        pytest.param(
            PENDING,
            {"patient_id": "bob"},
            Unique,
            "bookings_held_number",
            id="number-held-unpaid-and-booked",
        ),
        pytest.param(
            {"status": "no_show"},
            {"patient_id": "bob", **PENDING},
            Unique,
            "bookings_held_number",
            id="number-held-by-a-no-show-and-unpaid",
        ),
        pytest.param(
            {}, {"number": 2}, Unique, "bookings_held_patient", id="patient-twice-on-a-schedule"
        ),
        pytest.param(
            {"status": "attended"},
            {"number": 2, **PENDING},
            Unique,
            "bookings_held_patient",
            id="patient-attended-and-unpaid-on-a-schedule",
        ),
        pytest.param(
            {"idempotency_key": "k"},
            {"number": 2, "idempotency_key": "k", **CANCELLED},
            Unique,
            "bookings_idempotency",
            id="idempotency-key-reused",
        ),
        pytest.param(
            {"request_id": SAME_REQUEST},
            {"patient_id": "bob", "number": 2, "request_id": SAME_REQUEST},
            Unique,
            "bookings_request_id_key",
            id="request-id-reused",
        ),
        pytest.param(
            None,
            {"number": CAPACITY + 1},
            ForeignKey,
            "bookings_schedule_id_number_fkey",
            id="number-above-capacity",
        ),
        pytest.param(
            None, {"number": 0}, ForeignKey, "bookings_schedule_id_number_fkey", id="number-zero"
        ),
        pytest.param(
            None,
            {"verification_code": "ABC12"},
            Check,
            "bookings_verification_code_check",
            id="short-verification-code",
        ),
        pytest.param(
            None,
            {"patient_id": "alice smith"},
            Check,
            "bookings_patient_id_check",
            id="bad-patient-id",
        ),
        pytest.param(None, {"status": "lost"}, Check, "bookings_status_check", id="unknown-status"),
        pytest.param(
            None,
            {"status": "pending_payment"},
            Check,
            "bookings_hold_expires",
            id="unpaid-without-expiry",
        ),
        pytest.param(
            None,
            {"cancelled_by": "doctor", **CANCELLED},
            Check,
            "bookings_cancelled_by_check",
            id="unknown-canceller",
        ),
        pytest.param(
            None, {"status": "cancelled"}, Check, "bookings_check", id="cancelled-without-time"
        ),
        pytest.param(
            None, {"cancelled_at": NOW}, Check, "bookings_check", id="booked-with-cancel-time"
        ),
        pytest.param(
            None,
            {"idempotency_key": ""},
            Check,
            "bookings_idempotency_key_check",
            id="empty-idempotency-key",
        ),
        pytest.param(
            None,
            {"idempotency_key": "k" * 129},
            Check,
            "bookings_idempotency_key_check",
            id="long-idempotency-key",
        ),
    ],
)
async def test_bookings_refuse_a_broken_row(
    stores: Stores,
    schedule: Schedule,
    first: dict[str, Any] | None,
    second: dict[str, Any],
    error: type[asyncpg.PostgresError],
    constraint: str,
) -> None:
    if first is not None:
        await insert_booking(stores.pg, booking_row(schedule, **first))

    with pytest.raises(error) as refused:
        await insert_booking(stores.pg, booking_row(schedule, **second))

    assert refused.value.constraint_name == constraint


@pytest.mark.parametrize(
    "ended",
    [
        "status = 'cancelled', cancelled_at = now(), cancelled_by = 'patient'",
        "status = 'expired', expired_at = now()",
    ],
    ids=["cancelled", "expired"],
)
async def test_unique_rules_cover_only_bookings_holding_numbers(
    stores: Stores, schedule: Schedule, ended: str
) -> None:
    first = await insert_booking(stores.pg, booking_row(schedule, **PENDING))
    await stores.pg.execute(f"UPDATE bookings SET {ended} WHERE id = $1", first)

    # The same patient may take the same number again once the first booking let it go.
    second = await insert_booking(stores.pg, booking_row(schedule))
    await insert_booking(stores.pg, booking_row(schedule, patient_id="bob", number=2))

    assert second != first
    assert (await stores.ledger.audit()).schedules[0].booked == 2


# Each test's database holds the one schedule of the fixture (hospital h1, numbers 1..2).
@pytest.mark.parametrize(
    ("sql", "error", "constraint"),
    [
        pytest.param(
            "INSERT INTO schedule_numbers (hospital_id, schedule_id, number)"
            " SELECT hospital_id, id, 0 FROM schedules",
            Check,
            "schedule_numbers_number_check",
            id="number-zero",
        ),
        pytest.param(
            "INSERT INTO schedule_numbers (hospital_id, schedule_id, number)"
            " SELECT hospital_id, id, 1 FROM schedules",
            Unique,
            "schedule_numbers_pkey",
            id="number-twice",
        ),
        pytest.param(
            "UPDATE schedule_numbers SET booking_id = 42",
            Unique,
            "schedule_numbers_booking",
            id="one-booking-holds-two-numbers",
        ),
        pytest.param(
            "UPDATE schedules SET capacity = 0",
            Check,
            "schedules_capacity_check",
            id="capacity-zero",
        ),
        pytest.param(
            "UPDATE schedules SET capacity = 100001",
            Check,
            "schedules_capacity_check",
            id="capacity-too-large",
        ),
        pytest.param(
            "UPDATE schedules SET period = 'evening'",
            Check,
            "schedules_period_check",
            id="unknown-period",
        ),
        pytest.param(
            "UPDATE schedules SET fee_cents = -1",
            Check,
            "schedules_fee_cents_check",
            id="negative-fee",
        ),
        pytest.param(
            "UPDATE schedules SET department_id = 'nowhere'",
            ForeignKey,
            "schedules_hospital_id_department_id_fkey",
            id="unknown-department",
        ),
        pytest.param(
            "UPDATE hospitals SET max_per_day = 0",
            Check,
            "hospitals_max_per_day_check",
            id="max-per-day-zero",
        ),
        pytest.param(
            "UPDATE hospitals SET max_per_department_per_day = 0",
            Check,
            "hospitals_max_per_department_per_day_check",
            id="max-per-department-zero",
        ),
        pytest.param(
            "UPDATE hospitals SET cancel_cutoff_minutes = -1",
            Check,
            "hospitals_cancel_cutoff_minutes_check",
            id="negative-cutoff",
        ),
        pytest.param(
            "INSERT INTO hospitals (id) VALUES ('bad/id')",
            Check,
            "hospitals_id_check",
            id="bad-hospital-id",
        ),
        pytest.param(
            "INSERT INTO blacklist (hospital_id, patient_id, until)"
            " VALUES ('unknown', 'mallory', now())",
            ForeignKey,
            "blacklist_hospital_id_fkey",
            id="blacklist-unknown-hospital",
        ),
    ],
)
@pytest.mark.usefixtures("schedule")
async def test_other_tables_refuse_a_broken_row(
    stores: Stores,
    sql: str,
    error: type[asyncpg.PostgresError],
    constraint: str,
) -> None:
    with pytest.raises(error) as refused:
        await stores.pg.execute(sql)

    assert refused.value.constraint_name == constraint


async def test_numbers_landing_in_bulk_refresh_the_planner_statistics(stores: Stores) -> None:
    """A crowd's statements are planned from these statistics (Ledger.refresh_statistics):
    numbers that land in bulk are counted at once."""

    async def create(capacity: int) -> None:
        item = ScheduleIn("h1", "d1", "doc1", NOW.date(), Period.AM, capacity=capacity)
        await stores.ledger.create_schedules([item], NOW)

    await create(1000)
    assert await analyzed(stores.pg, "schedule_numbers") == (1, 1000)
    # 10 more on 1,000 known is under 50 + 10%, but the 1,000 may reach the cumulative
    # statistics only now (a backend flushes them up to seconds later): 1 or 2 ANALYZEs.
    await create(10)
    after_ten, _ = await analyzed(stores.pg, "schedule_numbers")
    await create(500)
    assert await analyzed(stores.pg, "schedule_numbers") == (after_ten + 1, 1510)


async def test_a_day_filling_with_bookings_refreshes_their_statistics(stores: Stores) -> None:
    """The refresh_statistics job's tick: the bookings are analyzed once a crowd has changed
    them by more than autovacuum's rule allows."""
    item = ScheduleIn("h1", "d1", "doc1", NOW.date(), Period.AM, capacity=100)
    (schedule,) = await stores.ledger.create_schedules([item], NOW)
    before, _ = await analyzed(stores.pg, "bookings")
    async with stores.pg.acquire() as conn:
        for n in range(1, 61):
            await insert_booking(conn, booking_row(schedule, number=n, patient_id=f"p{n}"))
        # Counted in the cumulative statistics once this backend flushes them.
        await conn.execute("SELECT pg_stat_force_next_flush()")
    await stores.ledger.refresh_statistics()
    assert await analyzed(stores.pg, "bookings") == (before + 1, 60)
