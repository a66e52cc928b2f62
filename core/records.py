"""A hospital's booking records: filtered, paged by keyset, or read whole for an export.

Records are ordered by (visit_date, id), which the index bookings_hospital_visit serves: a
page starts right after the position of the last row of the page before, so a page costs the
same however deep it is, and rows written meanwhile never shift the pages still to come.
An export reads every matching row through a server-side cursor inside one read-only
transaction: one consistent snapshot, a batch of rows in memory at a time.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from core.domain import BookingStatus, Period
from core.queries import query as q

EXPORT_BATCH_ROWS: Final = 1000
# A cursor is 12 bytes: the visit date's ordinal (uint32) and the booking id (int64).
_POSITION: Final = struct.Struct(">Iq")
_LAST_ORDINAL: Final = dt.date.max.toordinal()


@dataclass(frozen=True, slots=True)
class Position:
    """The (visit_date, id) of a record: a page starts after it."""

    visit_date: dt.date
    booking_id: int

    def cursor(self) -> str:
        packed = _POSITION.pack(self.visit_date.toordinal(), self.booking_id)
        return base64.urlsafe_b64encode(packed).decode()

    @classmethod
    def from_cursor(cls, cursor: str) -> Position:
        """The position of a cursor; ValueError unless it is 16 characters of base64url.

        Any such text is a position: an ordinal beyond the calendar is clamped to its ends,
        so a cursor never names an error, at worst a page before or after every row.
        """
        try:
            packed = base64.urlsafe_b64decode(cursor.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError("not base64url") from None
        if len(packed) != _POSITION.size or len(cursor) != 16:
            raise ValueError("not a cursor's length")
        ordinal, booking_id = _POSITION.unpack(packed)
        return cls(dt.date.fromordinal(min(max(ordinal, 1), _LAST_ORDINAL)), booking_id)


# Before every record: ids are positive.
START: Final = Position(dt.date.min, 0)


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which of a hospital's bookings: visits from `first_visit` to `last_visit` inclusive,
    and optionally one department, doctor or status."""

    hospital_id: str
    first_visit: dt.date = dt.date.min
    last_visit: dt.date = dt.date.max
    department_id: str | None = None
    doctor_id: str | None = None
    status: BookingStatus | None = None

    def start(self, after: Position | None) -> Position:
        """Where reading begins: after `after`, and never before the first visit date."""
        floor = Position(self.first_visit, 0)
        if after is None:
            return floor
        return max(after, floor, key=lambda p: (p.visit_date, p.booking_id))


@dataclass(frozen=True, slots=True)
class BookingRecord:
    """A booking as a hospital's staff see it: no verification code."""

    id: int
    hospital_id: str
    schedule_id: int
    patient_id: str
    department_id: str
    doctor_id: str
    visit_date: dt.date
    period: Period
    number: int
    status: BookingStatus
    fee_cents: int
    created_at: dt.datetime
    cancelled_at: dt.datetime | None

    @property
    def position(self) -> Position:
        return Position(self.visit_date, self.id)


@dataclass(frozen=True, slots=True)
class RecordPage:
    records: list[BookingRecord]
    # None on the last page.
    next_position: Position | None


def _record(row: asyncpg.Record) -> BookingRecord:
    return BookingRecord(
        id=row["id"],
        hospital_id=row["hospital_id"],
        schedule_id=row["schedule_id"],
        patient_id=row["patient_id"],
        department_id=row["department_id"],
        doctor_id=row["doctor_id"],
        visit_date=row["visit_date"],
        period=Period(row["period"]),
        number=row["number"],
        status=BookingStatus(row["status"]),
        fee_cents=row["fee_cents"],
        created_at=row["created_at"],
        cancelled_at=row["cancelled_at"],
    )


def _arguments(where: RecordFilter, start: Position, limit: int | None) -> list[Any]:
    return [
        where.hospital_id,
        start.visit_date,
        start.booking_id,
        where.last_visit,
        where.department_id,
        where.doctor_id,
        where.status.value if where.status is not None else None,
        limit,
    ]


async def page(
    pool: asyncpg.Pool, where: RecordFilter, after: Position | None, limit: int
) -> RecordPage:
    """Up to `limit` records after `after` (None: from the start)."""
    # One row more than asked says whether another page follows.
    rows = await pool.fetch(
        q("hospital_bookings"), *_arguments(where, where.start(after), limit + 1)
    )
    records = [_record(r) for r in rows[:limit]]
    more = len(rows) > limit
    return RecordPage(records, records[-1].position if more else None)


async def batches(
    pool: asyncpg.Pool, where: RecordFilter, size: int = EXPORT_BATCH_ROWS
) -> AsyncIterator[list[BookingRecord]]:
    """Every matching record, `size` at a time, from one snapshot. Close it (aclosing) when
    stopping early: it holds a connection and a transaction until then."""
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        cursor = await conn.cursor(
            q("hospital_bookings"), *_arguments(where, where.start(None), None)
        )
        while rows := await cursor.fetch(size):
            yield [_record(r) for r in rows]
