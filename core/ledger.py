"""The ledger of record in PostgreSQL: every read and write of bookings goes through here.

Strategies call the connection-level helpers inside their own transactions; the core and the
HTTP layer use the pool-level methods.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from core.domain import (
    Booking,
    BookingRequest,
    BookingStatus,
    CancelledBy,
    Code,
    PaymentStatus,
    Period,
    Rejected,
    Rules,
    Schedule,
    ScheduleIn,
    ScheduleQuery,
)
from core.failures import STORE_FAILURES
from core.queries import fetch_one
from core.queries import query as q
from core.replica import BrowsingReads
from core.verification import new_verification_code

log = logging.getLogger("slotrush.ledger")


@dataclass(frozen=True, slots=True)
class ScheduleAudit:
    id: int
    capacity: int
    booked: int

    @property
    def remaining(self) -> int:
        return max(self.capacity - self.booked, 0)

    @property
    def oversold(self) -> bool:
        return self.booked > self.capacity


@dataclass(frozen=True, slots=True)
class Audit:
    schedules: list[ScheduleAudit]
    duplicate_numbers: int
    duplicate_patients: int
    limit_violations: int

    @property
    def oversold(self) -> int:
        return sum(1 for s in self.schedules if s.oversold)


def schedule_from_row(row: asyncpg.Record | dict[str, Any]) -> Schedule:
    return Schedule(
        id=row["id"],
        hospital_id=row["hospital_id"],
        department_id=row["department_id"],
        doctor_id=row["doctor_id"],
        visit_date=row["visit_date"],
        period=Period(row["period"]),
        capacity=row["capacity"],
        fee_cents=row["fee_cents"],
        opens_at=row["opens_at"],
        external_id=row["external_id"],
    )


def booking_from_row(row: asyncpg.Record | dict[str, Any]) -> Booking:
    cancelled_by = row["cancelled_by"]
    return Booking(
        id=row["id"],
        schedule_id=row["schedule_id"],
        patient_id=row["patient_id"],
        hospital_id=row["hospital_id"],
        department_id=row["department_id"],
        doctor_id=row["doctor_id"],
        visit_date=row["visit_date"],
        period=Period(row["period"]),
        number=row["number"],
        verification_code=row["verification_code"],
        status=BookingStatus(row["status"]),
        fee_cents=row["fee_cents"],
        created_at=row["created_at"],
        cancelled_at=row["cancelled_at"],
        hold_expires_at=row["hold_expires_at"],
        cancelled_by=CancelledBy(cancelled_by) if cancelled_by is not None else None,
        attended_at=row["attended_at"],
        expired_at=row["expired_at"],
        settled_at=row["settled_at"],
        idempotency_key=row["idempotency_key"],
        request_id=str(row["request_id"]),
        payment_status=PaymentStatus(row["payment_status"]),
        payment_provider=row["payment_provider"],
        payment_ref=row["payment_ref"],
    )


# --- inside a strategy's transaction -------------------------------------------------------


async def check_patient_day(conn: asyncpg.Connection, req: BookingRequest) -> Rejected | None:
    """Lock the patient's day at this hospital and check every per-patient rule.

    The lock makes the check and the following insert one step for this patient: two
    concurrent bookings of one patient on different schedules cannot both pass.
    """
    s = req.schedule
    await conn.execute(q("lock_patient_day"), req.patient_id, s.hospital_id, s.visit_date)
    row = await fetch_one(
        conn,
        "patient_day_check",
        req.patient_id,
        s.hospital_id,
        s.visit_date,
        s.department_id,
        s.id,
    )
    if row["blacklisted"]:
        return Rejected(Code.BLACKLISTED)
    if row["already_booked"]:
        return Rejected(Code.ALREADY_BOOKED)
    if row["day_count"] >= row["max_per_day"]:
        return Rejected(Code.DAILY_LIMIT)
    if row["dept_count"] >= row["max_per_department_per_day"]:
        return Rejected(Code.DEPARTMENT_LIMIT)
    return None


async def lock_patient_day(conn: asyncpg.Connection, booking: Booking) -> None:
    await conn.execute(
        q("lock_patient_day"), booking.patient_id, booking.hospital_id, booking.visit_date
    )


async def insert_booking(
    conn: asyncpg.Connection, req: BookingRequest, number: int
) -> Booking | None:
    """Write the booking holding `number` (pending_payment for a paid schedule, else booked);
    None if a unique rule of the ledger refused it, or the schedule was suspended."""
    row = await conn.fetchrow(
        q("insert_booking"),
        req.schedule.id,
        req.patient_id,
        number,
        new_verification_code(),
        uuid.UUID(req.request_id),
        req.idempotency_key,
        req.schedule.hospital_id,
    )
    return booking_from_row(row) if row is not None else None


async def insert_bookings(
    conn: asyncpg.Connection | asyncpg.Pool, items: Sequence[tuple[BookingRequest, int, str]]
) -> dict[str, Booking]:
    """Write many (request, number, lease id) rows in one statement, each only if it wins its
    lease's claim (see insert_bookings in ledger.sql); the lease id is the row's request id.

    Returns the written bookings by lease id; a lease missing from the answer was claimed
    before, or its row was refused by a rule of the ledger (or its schedule was suspended).
    """
    rows = [
        (
            req.schedule.id,
            req.patient_id,
            number,
            uuid.UUID(lease_id),
            new_verification_code(),
            req.idempotency_key,
            req.schedule.hospital_id,
        )
        for req, number, lease_id in items
    ]
    written = await conn.fetch(q("insert_bookings"), *_columns(rows, 7))
    return {str(r["request_id"]): booking_from_row(r) for r in written}


async def put_rules(conn: asyncpg.Connection, hospital_id: str, rules: Rules) -> None:
    await conn.execute(
        q("put_rules"),
        hospital_id,
        rules.max_per_day,
        rules.max_per_department_per_day,
        rules.cancel_cutoff_minutes,
    )
    await conn.execute(q("bump_config_version"), hospital_id)


async def put_blacklist(
    conn: asyncpg.Connection, hospital_id: str, patient_id: str, until: dt.datetime
) -> dt.datetime:
    """Blacklist by hand; when this entry began."""
    await conn.execute(q("upsert_hospitals"), [hospital_id])
    since: dt.datetime = await conn.fetchval(q("put_blacklist"), hospital_id, patient_id, until)
    await conn.execute(q("bump_config_version"), hospital_id)
    return since


async def delete_blacklist(conn: asyncpg.Connection, hospital_id: str, patient_id: str) -> None:
    await conn.execute(q("delete_blacklist"), hospital_id, patient_id)
    await conn.execute(q("bump_config_version"), hospital_id)


async def insert_schedules(
    conn: asyncpg.Connection, items: Sequence[ScheduleIn], now: dt.datetime
) -> list[Schedule]:
    """Create schedules (every number free), upserting what they name (v1) and bringing it
    back if it was deleted; in the caller's transaction."""
    if not items:
        return []
    hospitals = sorted({i.hospital_id for i in items})
    departments = sorted({(i.hospital_id, i.department_id) for i in items})
    first_department: dict[tuple[str, str], str] = {}
    for i in items:
        first_department.setdefault((i.hospital_id, i.doctor_id), i.department_id)
    doctors = sorted((*doctor, department) for doctor, department in first_department.items())
    await conn.execute(q("upsert_hospitals"), hospitals)
    await conn.execute(q("upsert_departments"), *_columns(departments, 2))
    await conn.execute(q("upsert_doctors"), *_columns(doctors, 3))
    await conn.execute(
        q("revive_named"),
        hospitals,
        *_columns(departments, 2),
        *_columns((doctor[:2] for doctor in doctors), 2),
    )
    rows = await conn.fetch(
        q("insert_schedules"),
        [i.hospital_id for i in items],
        [i.department_id for i in items],
        [i.doctor_id for i in items],
        [i.visit_date for i in items],
        [i.period.value for i in items],
        [i.capacity for i in items],
        [i.fee_cents for i in items],
        [i.opens_at or now for i in items],
        [i.external_id for i in items],
    )
    schedules = [schedule_from_row(r) for r in rows]
    await conn.execute(
        q("insert_schedule_numbers"),
        [s.hospital_id for s in schedules],
        [s.id for s in schedules],
        [s.capacity for s in schedules],
    )
    return schedules


# --- pool-level reads and admin writes -----------------------------------------------------


class Ledger:
    def __init__(self, pool: asyncpg.Pool, reads: BrowsingReads | None = None) -> None:
        self.pool = pool
        # Where the schedule lists are read: the primary, unless a replica is configured.
        self.reads = reads or BrowsingReads(pool)

    async def create_schedules(
        self, items: Sequence[ScheduleIn], now: dt.datetime
    ) -> list[Schedule]:
        async with self.pool.acquire() as conn, conn.transaction():
            schedules = await insert_schedules(conn, items, now)
        await self.refresh_statistics(sum(s.capacity for s in schedules))
        return schedules

    async def refresh_statistics(self, numbers_added: int = 0) -> None:
        """ANALYZE the booking tables whose statistics no longer describe them: after numbers
        landed (outside the transaction that wrote them), and on the refresh_statistics
        job's tick while a crowd fills the bookings. The crowd's statements are
        planned from these statistics; autovacuum refreshes them a minute later at best, and
        never where it is off. Planned from statistics that knew no numbers of a new schedule,
        a Redis strategy's ledger write read all 10,000 numbers of its schedule per batch and
        a patient's rule check read every booking of the hospital that day: redis-queue booked
        a hot schedule at 360/s instead of 790/s. Best effort: the schedules are written, and
        a failure here must not tell their creator otherwise."""
        try:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(q("stale_statistics"), numbers_added)
                if rows:
                    # SKIP_LOCKED: an ANALYZE already running on a table does the job.
                    tables = ", ".join(r["name"] for r in rows)
                    await conn.execute(f"ANALYZE (SKIP_LOCKED) {tables}")
        except (*STORE_FAILURES, asyncpg.PostgresError) as exc:
            log.warning("could not refresh the planner statistics: %r", exc)

    async def get_schedule(self, schedule_id: int) -> Schedule | None:
        row = await self.pool.fetchrow(q("get_schedule"), schedule_id)
        return schedule_from_row(row) if row is not None else None

    async def list_schedules(
        self, query: ScheduleQuery, *, after: int | None, limit: int
    ) -> list[tuple[Schedule, int]]:
        """Up to `limit` schedules after the id `after` in id order, with their free numbers;
        `query.status` is not the ledger's to filter (it depends on the hospital's terms)."""
        rows = await self.reads.fetch(
            q("list_schedules"),
            query.hospital_id,
            query.department_id,
            query.doctor_id,
            query.visit_date,
            query.visit_from,
            query.visit_to,
            query.period,
            after,
            limit,
        )
        return [(schedule_from_row(r), r["remaining"]) for r in rows]

    async def remaining(self, schedule: Schedule) -> int:
        return int(await self.pool.fetchval(q("remaining"), schedule.hospital_id, schedule.id))

    async def get_rules(self, hospital_id: str) -> Rules:
        row = await self.pool.fetchrow(q("get_rules"), hospital_id)
        return Rules(**dict(row)) if row is not None else Rules()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction, for writes that others must join (see Inventory)."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def get_booking(self, booking_id: int) -> Booking | None:
        row = await self.pool.fetchrow(q("get_booking"), booking_id)
        return booking_from_row(row) if row is not None else None

    async def booking_by_request(self, hospital_id: str, request_id: str) -> Booking | None:
        row = await self.pool.fetchrow(
            q("get_booking_by_request"), hospital_id, uuid.UUID(request_id)
        )
        return booking_from_row(row) if row is not None else None

    async def booking_by_idempotency_key(self, patient_id: str, key: str) -> Booking | None:
        """The patient's booking under `key`, at whichever hospital it was used."""
        row = await self.pool.fetchrow(q("get_booking_by_idempotency_key"), patient_id, key)
        return booking_from_row(row) if row is not None else None

    async def patient_bookings(
        self, patient_id: str, *, before: int | None, limit: int
    ) -> list[Booking]:
        """Up to `limit` of the patient's bookings, newest first, before the id `before`."""
        rows = await self.pool.fetch(q("list_patient_bookings"), patient_id, before, limit)
        return [booking_from_row(r) for r in rows]

    async def audit(self, hospital_id: str | None = None) -> Audit:
        """The invariants counted over every hospital, or over `hospital_id` only."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            schedules = [
                ScheduleAudit(r["id"], r["capacity"], r["booked"])
                for r in await conn.fetch(q("audit_schedules"), hospital_id)
            ]
            dup = await fetch_one(conn, "audit_duplicates", hospital_id)
        return Audit(
            schedules=schedules,
            duplicate_numbers=dup["duplicate_numbers"],
            duplicate_patients=dup["duplicate_patients"],
            limit_violations=dup["limit_violations"],
        )


def _columns(rows: Iterable[tuple[Any, ...]], width: int) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    return cols
