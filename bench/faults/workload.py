"""The crowd: its schedules and patients (one intent each, with its own Idempotency-Key), the
bursts in which they book, and the resends that settle every unknown outcome."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.faults.config import SuiteConfig
from bench.faults.injectors import PROXY_FAULTS, ProxyFault
from bench.history import BookingClient, History, Intent
from loadtest.client.seed import AdminClient, SchedulePlan, SeededSchedule, new_run_id, opening_in
from loadtest.client.tokens import new_secret, patient_token

# How long unknown outcomes are resent before they count as unresolved.
RESOLVE_SECONDS = 30.0
PROBE_CAPACITY = 1000
_READ_CONCURRENCY = 64
_RESOLVE_CONCURRENCY = 16
_T = TypeVar("_T")


@dataclass
class Run:
    """What one scenario builds up while it runs: the crowd's schedules and intents, their
    tokens, and every answer they got."""

    config: SuiteConfig
    strategy: str
    fault: str
    secret: str = field(default_factory=new_secret)
    prefix: str = ""
    history: History = field(default_factory=History)
    intents: list[Intent] = field(default_factory=list)
    schedules: list[SeededSchedule] = field(default_factory=list)
    visit_date: dt.date = field(default_factory=dt.date.today)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def proxy_fault(self) -> ProxyFault | None:
        return PROXY_FAULTS.get(self.fault)

    def token(self, patient_id: str) -> str:
        token = self._tokens.get(patient_id)
        if token is None:
            token = self._tokens[patient_id] = patient_token(self.secret, patient_id)
        return token


async def seed_run(run: Run, admin: AdminClient) -> SeededSchedule:
    """Create the crowd's schedules and the probes' one; returns the probes' schedule."""
    crowd = run.config.crowd
    run_id = new_run_id()
    # Opened a second ago: the crowd books at once, and a server clock a hair behind ours
    # cannot answer not_open.
    opens_at = opening_in(-1.0)
    crowd_plan = SchedulePlan(run_id, crowd.schedules, crowd.capacity, opens_at, label="crowd")
    probe_plan = SchedulePlan(run_id, 1, PROBE_CAPACITY, opens_at, label="probe")
    run.schedules = await asyncio.to_thread(admin.create_schedules, crowd_plan)
    [probe] = await asyncio.to_thread(admin.create_schedules, probe_plan)
    run.visit_date = dt.date.fromisoformat(crowd_plan.bodies()[0]["visit_date"])
    run.intents = [
        Intent(f"crowd-{n}", run.schedules[n % len(run.schedules)].id, uuid.uuid4().hex)
        for n in range(crowd.patients)
    ]
    return probe


async def run_crowd(client: BookingClient, run: Run) -> None:
    crowd = run.config.crowd
    bursts = max(1, round(crowd.duration / crowd.burst_interval))
    per_burst = -(-len(run.intents) // bursts)
    started = time.monotonic()
    deadline = started + crowd.duration + 2 * crowd.client_timeout

    async def patient(n: int, intent: Intent) -> None:
        await asyncio.sleep(started + (n // per_burst) * crowd.burst_interval - time.monotonic())
        await client.send_until_settled(intent, "crowd", attempts=crowd.attempts, deadline=deadline)

    await asyncio.gather(*(patient(n, intent) for n, intent in enumerate(list(run.intents))))


async def resolve(client: BookingClient, run: Run) -> None:
    """Resend every intent whose outcome is still open with its key, until it is settled; a
    few at a time, so that the resends do not become a second crowd."""
    deadline = time.monotonic() + RESOLVE_SECONDS
    await bounded(
        [
            client.send_until_settled(intent, "resolve", attempts=None, deadline=deadline)
            for intent in run.history.unsettled(run.intents)
        ],
        _RESOLVE_CONCURRENCY,
    )


async def bounded(
    calls: Sequence[Coroutine[Any, Any, _T]], limit: int = _READ_CONCURRENCY
) -> list[_T]:
    """Await `calls`, at most `limit` at a time."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Coroutine[Any, Any, _T]) -> _T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))
