"""The crowd: its schedules and patients (several intents each, every one with its own
Idempotency-Key), the bursts in which they book, the cancellations and rebookings and the
blacklistings among them, and the resends that settle every unknown outcome."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from bench.faults.config import CrowdPlan, SuiteConfig
from bench.faults.injectors import PROXY_FAULTS, ProxyFault
from bench.faults.paying import Wallet, pay
from bench.history import Action, BookingClient, History, Intent, Outcome
from loadtest.client.seed import AdminClient, SchedulePlan, SeededSchedule, new_run_id, opening_in
from loadtest.client.tokens import admin_token, new_secret, patient_token

# How long unknown outcomes are resent before they count as unresolved.
RESOLVE_SECONDS = 30.0
PROBE_CAPACITY = 1000
# How long a crowd blacklisting lasts: beyond the run.
_BLACKLISTED_FOR = dt.timedelta(days=2)
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
    # The Redis (or a node of the Redis Cluster) the server uses, not a proxy in front of it.
    redis_url: str = ""
    database_url: str = ""
    history: History = field(default_factory=History)
    intents: list[Intent] = field(default_factory=list)
    schedules: list[SeededSchedule] = field(default_factory=list)
    probe_schedule: SeededSchedule | None = None
    visit_date: dt.date = field(default_factory=dt.date.today)
    # Patients blacklisted during the crowd -> when the ledger had it for sure (time.time()).
    blacklisted: dict[str, float] = field(default_factory=dict)
    # What the crowd paid, when its schedules are paid (a payment fault's); None: free.
    wallet: Wallet | None = None
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def proxy_fault(self) -> ProxyFault | None:
        return PROXY_FAULTS.get(self.fault)

    @property
    def hospital_id(self) -> str:
        return self.schedules[0].hospital_id

    def token(self, patient_id: str) -> str:
        token = self._tokens.get(patient_id)
        if token is None:
            token = self._tokens[patient_id] = patient_token(self.secret, patient_id)
        return token

    def new_intent(self, patient_id: str, schedule_id: str) -> Intent:
        intent = Intent(patient_id, schedule_id, uuid.uuid4().hex)
        self.intents.append(intent)
        return intent


def wishes(crowd: CrowdPlan, n: int) -> list[int]:
    """The schedules (by index) patient n wants: two in one department, then one in each of
    the next departments, so both limits of the default rules bite."""
    s, d = crowd.schedules, crowd.departments
    picks = [n % s, (n + d) % s, *((n + k) % s for k in range(1, crowd.intents - 1))]
    return list(dict.fromkeys(picks))


async def seed_run(run: Run, admin: AdminClient) -> SeededSchedule:
    """Create the crowd's schedules and the probes' one; returns the probes' schedule."""
    crowd = run.config.crowd
    run_id = new_run_id()
    # Opened a second ago: the crowd books at once, and a server clock a hair behind ours
    # cannot answer not_open.
    opens_at = opening_in(-1.0)
    crowd_plan = SchedulePlan(
        run_id,
        crowd.schedules,
        crowd.capacity,
        opens_at,
        departments=crowd.departments,
        label="crowd",
        fee_cents=run.config.payments.fee_cents if run.wallet is not None else 0,
    )
    probe_plan = SchedulePlan(run_id, 1, PROBE_CAPACITY, opens_at, label="probe")
    run.schedules = await asyncio.to_thread(admin.create_schedules, crowd_plan)
    [probe] = await asyncio.to_thread(admin.create_schedules, probe_plan)
    run.probe_schedule = probe
    run.visit_date = dt.date.fromisoformat(crowd_plan.bodies()[0]["visit_date"])
    return probe


async def seed_paid_day(
    run: Run, admin: AdminClient, client: BookingClient
) -> tuple[SeededSchedule, dt.date]:
    """A paid schedule of today (in a hospital of its own), booked and paid for by
    `day_bookings` patients: what a day-end fault settles, each booking a no-show refunded.
    Their requests are in the run's history, their intents are not the crowd's. Returns the
    schedule and its visit date."""
    payments = run.config.payments
    plan = SchedulePlan(
        new_run_id(),
        1,
        payments.day_bookings,
        opening_in(-86_400),  # opened yesterday: the visit date is today
        label="day",
        fee_cents=payments.fee_cents,
    )
    [day] = await asyncio.to_thread(admin.create_schedules, plan)
    intents = [Intent(f"day-{k}", day.id, uuid.uuid4().hex) for k in range(payments.day_bookings)]
    deadline = time.monotonic() + RESOLVE_SECONDS
    await asyncio.gather(
        *(client.send_until_settled(i, "day", attempts=None, deadline=deadline) for i in intents)
    )
    await pay_holds(client, run, intents)
    return day, plan.visit_date


async def run_crowd(client: BookingClient, run: Run) -> None:
    crowd = run.config.crowd
    bursts = max(1, round(crowd.duration / crowd.burst_interval))
    per_burst = -(-crowd.patients // bursts)
    started = time.monotonic()
    deadline = started + crowd.duration + 2 * crowd.client_timeout

    async def patient(n: int) -> None:
        await asyncio.sleep(started + (n // per_burst) * crowd.burst_interval - time.monotonic())
        patient_id = f"crowd-{n}"
        intents = [run.new_intent(patient_id, run.schedules[k].id) for k in wishes(crowd, n)]
        blacklisting = n % crowd.blacklist_every == 0
        await asyncio.gather(
            *(
                client.send_until_settled(i, "crowd", attempts=crowd.attempts, deadline=deadline)
                for i in intents
            ),
            *([blacklist(client, run, patient_id, deadline)] if blacklisting else []),
        )
        if run.wallet is not None and not lets_lapse(run.config, n):
            await pay_holds(client, run, intents)
        if n % crowd.rebook_every == 0:
            await cancel_and_rebook(client, run, intents, deadline)

    await asyncio.gather(*(patient(n) for n in range(crowd.patients)))


async def cancel_and_rebook(
    client: BookingClient, run: Run, intents: Sequence[Intent], deadline: float
) -> None:
    """Cancel the first booking the patient got, then book that schedule again (new key)."""
    for intent in intents:
        last = run.history.last(intent)
        if last is not None and last.outcome is Outcome.OK and last.booking_id is not None:
            cancel = await client.cancel_until_settled(
                intent, last.booking_id, "crowd", deadline=deadline
            )
            if cancel.outcome is Outcome.OK:
                again = run.new_intent(intent.patient_id, intent.schedule_id)
                await client.send_until_settled(
                    again, "crowd", attempts=run.config.crowd.attempts, deadline=deadline
                )
                if run.wallet is not None:
                    await pay_holds(client, run, [again])
            return


def lets_lapse(config: SuiteConfig, n: int) -> bool:
    """Whether patient n lets its holds lapse (none of those who cancel and book again)."""
    every = config.payments.lapse_every
    return n % every == every // 2 and n % config.crowd.rebook_every != 0


async def pay_holds(client: BookingClient, run: Run, intents: Sequence[Intent]) -> None:
    """Pay for every hold these intents got."""
    assert run.wallet is not None
    wallet = run.wallet
    await asyncio.gather(
        *(
            pay(client, wallet, intent.patient_id, last.booking_id)
            for intent in intents
            if (last := run.history.last(intent)) is not None
            and last.outcome is Outcome.OK
            and last.booking_id is not None
        )
    )


async def blacklist(client: BookingClient, run: Run, patient_id: str, deadline: float) -> None:
    """Blacklist a patient of the crowd, through the server the crowd books with, until the
    answer says the ledger has it; remembers when."""
    until = dt.datetime.now(dt.UTC) + _BLACKLISTED_FOR
    path = f"/v1/admin/hospitals/{run.hospital_id}/blacklist/{patient_id}"
    headers = {"Authorization": f"Bearer {admin_token(run.secret)}"}
    body = {"until": until.isoformat().replace("+00:00", "Z")}
    while time.monotonic() < deadline + RESOLVE_SECONDS:
        try:
            # The client's address follows the server when it restarts on another port.
            async with client.session.put(
                client.base_url + path, json=body, headers=headers, timeout=client.timeout
            ) as response:
                if response.status == 200:
                    run.blacklisted[patient_id] = time.time()
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.2)


async def resolve(client: BookingClient, run: Run) -> None:
    """Resend every intent whose outcome is still open with its key, and every cancellation
    likewise, until it is settled; a few at a time, so that the resends do not become a
    second crowd."""
    deadline = time.monotonic() + RESOLVE_SECONDS
    history = run.history
    cancelled = {a.intent: a.booking_id for a in history.attempts if a.action is Action.CANCEL}
    await bounded(
        [
            *(
                client.send_until_settled(intent, "resolve", attempts=None, deadline=deadline)
                for intent in history.unsettled(run.intents)
            ),
            *(
                client.cancel_until_settled(intent, booking_id, "resolve", deadline=deadline)
                for intent in history.unsettled(cancelled, Action.CANCEL)
                if (booking_id := cancelled[intent]) is not None
            ),
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
