"""Delivering the outbox: at least once, signed, with retries, dead after too many.

A pass claims due notifications in PostgreSQL (SKIP LOCKED, so any number of deliverers
share the work) for a while and counts the attempt, posts each through the Courier, then
marks it delivered, or due again after a backoff that doubles per attempt, or dead once it
has had its last attempt. A deliverer that dies between the claim and the mark leaves it
due again when the claim runs out: delivered twice, never lost; the receiver drops the
repeat by its dedupe id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import asyncpg
import orjson

from core.notifications import signing
from core.queries import query as q

DEDUPE_HEADER: Final = "Slotrush-Dedupe-Id"
EVENT_HEADER: Final = "Slotrush-Event"
# Claimed per pass, and posted at once at most.
BATCH: Final = 100
_AT_ONCE: Final = 16
# The longest wait between two attempts.
_MAX_BACKOFF_SECONDS: Final = 3600.0


class DeliveryFailed(Exception):
    """The receiver could not be reached, or did not answer in time."""


class Courier(Protocol):
    """Posts a body; the server's is aiohttp's client (core stays free of it)."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """The HTTP status of the answer; raises DeliveryFailed if there was none."""
        ...


@dataclass(frozen=True, slots=True)
class Policy:
    max_attempts: int
    # The wait after the first failed attempt; doubled after each one more.
    retry_seconds: float
    # How long a claim lasts: longer than a post may take.
    claim_seconds: float

    def backoff(self, attempts: int) -> float:
        return min(_MAX_BACKOFF_SECONDS, self.retry_seconds * 2 ** (attempts - 1))


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: int
    failed: int


async def deliver_due(pool: asyncpg.Pool, courier: Courier, policy: Policy) -> Outcome:
    """One pass over the notifications due now."""
    claimed = await pool.fetch(q("claim_notifications"), BATCH, policy.claim_seconds)
    if not claimed:
        return Outcome(0, 0)
    limit = asyncio.Semaphore(_AT_ONCE)

    async def attempt(row: asyncpg.Record) -> str | None:
        async with limit:
            return await _post(courier, row)

    errors = await asyncio.gather(*(attempt(row) for row in claimed))
    delivered = [row for row, error in zip(claimed, errors, strict=True) if error is None]
    failed = [(row, error) for row, error in zip(claimed, errors, strict=True) if error]
    if delivered:
        await pool.execute(
            q("notifications_delivered"),
            [r["hospital_id"] for r in delivered],
            [r["id"] for r in delivered],
        )
    if failed:
        await pool.execute(
            q("notifications_failed"),
            [r["hospital_id"] for r, _ in failed],
            [r["id"] for r, _ in failed],
            [policy.backoff(r["attempts"]) for r, _ in failed],
            [error for _, error in failed],
            policy.max_attempts,
        )
    return Outcome(len(delivered), len(failed))


def body(row: asyncpg.Record) -> bytes:
    """What is posted: the same bytes at every attempt."""
    created_at: dt.datetime = row["created_at"]
    return orjson.dumps(
        {
            "id": row["dedupe_id"],
            "type": row["kind"],
            "hospital_id": row["hospital_id"],
            "created_at": created_at,
            "data": orjson.Fragment(row["payload"]),
        }
    )


async def _post(courier: Courier, row: asyncpg.Record) -> str | None:
    """None once the receiver took it (2xx), else why not."""
    url = row["webhook_url"]
    if url is None:
        return "the hospital has no webhook_url"
    sent = body(row)
    headers = {
        "Content-Type": "application/json",
        signing.HEADER: signing.signature(row["webhook_secret"], sent, int(time.time())),
        DEDUPE_HEADER: row["dedupe_id"],
        EVENT_HEADER: row["kind"],
    }
    try:
        status = await courier.post(url, sent, headers)
    except DeliveryFailed as exc:
        return f"not delivered: {exc}"
    return None if 200 <= status < 300 else f"HTTP {status}"
