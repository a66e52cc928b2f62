"""Writing notifications, each inside the transaction of the change it tells of.

A hospital without a `webhook_url` gets none. Each event has a stable dedupe id (its kind
and what it is about), so writing one twice keeps the first, and the receiver can drop a
repeated delivery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import asyncpg
import orjson

from core.domain import Booking
from core.queries import query as q


class Kind(StrEnum):
    CONFIRMED = "confirmed"
    REMINDER = "reminder"
    CANCELLED_BY_HOSPITAL = "cancelled_by_hospital"
    REFUNDED = "refunded"
    BLACKLISTED = "blacklisted"


async def bookings(
    conn: asyncpg.Connection,
    kind: Kind,
    about: Sequence[Booking],
    extra: dict[str, Any] | None = None,
) -> None:
    """One notification of `kind` per booking (`{"booking": ...}` plus `extra`), dedupe id
    `<kind>/<booking id>`."""
    by_hospital: dict[str, list[int]] = {}
    for booking in about:
        by_hospital.setdefault(booking.hospital_id, []).append(booking.id)
    for hospital_id, ids in by_hospital.items():
        await conn.execute(
            q("notify_bookings"), hospital_id, ids, kind, orjson.dumps(extra or {}).decode()
        )


async def refunded(
    conn: asyncpg.Connection, booking: Booking, *, amount_cents: int, refund_ref: str
) -> None:
    """A booking's fee went back to the patient: call inside the transaction that records the
    refund as confirmed (payments). Once per booking."""
    await bookings(
        conn, Kind.REFUNDED, [booking], {"amount_cents": amount_cents, "refund_ref": refund_ref}
    )


async def blacklisted(
    conn: asyncpg.Connection,
    hospital_id: str,
    patient_id: str,
    *,
    until: dt.datetime,
    since: dt.datetime,
    source: str,
) -> None:
    """A patient blacklisted at the hospital (by hand or by its rules); one per entry."""
    payload = {"until": until, "since": since, "source": source}
    dedupe_id = f"{Kind.BLACKLISTED}/{patient_id}/{since.isoformat()}"
    await conn.execute(
        q("notify_patient"),
        hospital_id,
        patient_id,
        Kind.BLACKLISTED,
        dedupe_id,
        orjson.dumps(payload).decode(),
    )
