"""What a hospital's staff do with its notifications: read them (the dead letters above
all), send a dead one again, and read or rotate the secret webhooks are signed with."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from core.domain import Code
from core.errors import SlotrushError
from core.paging import Page, page_of
from core.queries import query as q


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: int
    dedupe_id: str
    kind: str
    # pending, delivered or dead
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    data: dict[str, Any]


async def page(
    pool: asyncpg.Pool, hospital_id: str, status: str | None, *, after: int | None, limit: int
) -> Page[NotificationRecord, int]:
    """The hospital's notifications in id order, of one status or all."""
    rows = await pool.fetch(q("list_notifications"), hospital_id, status, after, limit + 1)
    return page_of([_record(row) for row in rows], limit, lambda r: r.id)


def _record(row: asyncpg.Record) -> NotificationRecord:
    fields = dict(row)
    data = orjson.loads(fields.pop("payload"))
    return NotificationRecord(**fields, data=data)


async def retry(pool: asyncpg.Pool, hospital_id: str, notification_id: int) -> None:
    """An undelivered notification due now; a dead one with its attempts counted afresh."""
    if await pool.fetchval(q("retry_notification"), hospital_id, notification_id) is None:
        raise SlotrushError(Code.NOTIFICATION_NOT_FOUND)


async def secret(pool: asyncpg.Pool, hospital_id: str) -> str:
    found: str | None = await pool.fetchval(q("get_webhook_secret"), hospital_id)
    if found is None:
        raise SlotrushError(Code.HOSPITAL_NOT_FOUND)
    return found


async def rotate_secret(pool: asyncpg.Pool, hospital_id: str) -> str:
    """A new secret for the hospital's webhooks, from the next attempt on."""
    rotated: str | None = await pool.fetchval(
        q("rotate_webhook_secret"), hospital_id, secrets.token_hex(32)
    )
    if rotated is None:
        raise SlotrushError(Code.HOSPITAL_NOT_FOUND)
    return rotated
