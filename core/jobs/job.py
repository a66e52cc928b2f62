"""What a job is, what it is given, and how queued work is enqueued."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

from core.inventory import Inventory
from core.notifications.delivery import Courier
from core.payments.providers import Providers
from core.stores import Stores


@dataclass(frozen=True, slots=True)
class JobContext:
    """What every job runs with: the stores, the inventory whose release path frees
    numbers (the strategy the process serves with), the payment providers, and what posts
    webhooks."""

    stores: Stores
    inventory: Inventory
    providers: Providers
    courier: Courier


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    # Called with the context and the item's payload (None for a periodic job).
    run: Callable[[JobContext, bytes | None], Awaitable[None]]
    # A cron expression, six fields with the seconds last ("* * * * * *": every second):
    # the job runs by itself on it. None: the job runs once per item enqueued.
    every: str | None = None
    # A periodic job whose lateness breaks a promise: a tick claimed by a process that died
    # is run again after this many seconds without its heartbeat (pgqueuer waits 30). Only
    # for a job that is safe to run twice at once (a stalled, not dead, process resumes).
    stale_after: float | None = None


async def enqueue(conn: asyncpg.Connection, job: Job, payload: bytes, *, item: str) -> bool:
    """Queue one item of a queued job in the caller's transaction (it runs once that commits,
    never if it rolls back). `item` names it: while an item of that name is queued or
    running, queueing it again does nothing (False)."""
    queries = Queries(AsyncpgDriver(conn))
    (queued,) = await queries.enqueue(
        job.name, payload, dedupe_key=f"{job.name}/{item}", on_conflict="skip"
    )
    return queued is not None
