"""The checks after each scenario: what the clients were told, held against the ledger's own
rows (and, for Redis strategies, against Redis)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from bench.faults import money
from bench.faults.config import keeps_counters_in_redis, lease_settle_seconds, uses_redis_state
from bench.faults.result import FIRST_SUCCESS_LIMIT, ScenarioResult, Strike
from bench.faults.workload import Run, bounded
from bench.history import Action, Attempt, BookingClient, History, Intent, Outcome
from core.keys import KeySpace, SlotKeys, slot_tag
from core.stores import RedisClient, open_redis
from loadtest.client.seed import AdminClient, SeededSchedule

_EXAMPLES_LISTED = 25
_HELD = frozenset({"pending_payment", "booked", "attended", "no_show"})


def count_outcomes(result: ScenarioResult, run: Run) -> None:
    history = run.history
    counts = history.outcome_counts()
    result.requests = len(history.attempts)
    result.ok, result.failed = counts[Outcome.OK], counts[Outcome.FAILED]
    result.unknown = counts[Outcome.UNKNOWN]
    result.refused = sum(
        1 for a in history.attempts if a.outcome is Outcome.FAILED and a.status is None
    )
    result.patients = len({i.patient_id for i in run.intents})
    result.intents = len(run.intents)
    result.cancels = sum(1 for i in run.intents if history.cancelled(i))
    uncertain = {
        a.intent
        for a in history.attempts
        if a.outcome is Outcome.UNKNOWN and a.action is Action.BOOK
    }
    result.uncertain = len(uncertain)
    result.unresolved = len(history.unsettled(run.intents))
    for intent in uncertain:
        last = history.last(intent)
        if last is not None and last.settled:
            if last.outcome is Outcome.OK:
                result.unknown_resolved_booked += 1
            else:
                result.unknown_resolved_none += 1


@dataclass(frozen=True, slots=True)
class Row:
    """A booking as the ledger has it."""

    id: str
    schedule_id: str
    patient_id: str
    hospital_id: str
    department_id: str
    number: int
    # Holds its number (API.md 1.1: pending_payment, booked, attended or no_show).
    active: bool
    status: str
    key: str | None
    created_at: float
    request_id: str


class Checker:
    """Compares what the clients were told with what the ledger (and Redis) hold."""

    def __init__(
        self, result: ScenarioResult, run: Run, session: aiohttp.ClientSession, base_url: str
    ) -> None:
        self.result = result
        self.run = run
        self.session = session
        self.base_url = base_url
        self.listed = self.unlisted = 0

    def problem(self, text: str) -> None:
        self.result.problems.append(text)

    def example(self, text: str) -> None:
        """A problem of one patient: the figures count every one, a few are listed."""
        if self.listed < _EXAMPLES_LISTED:
            self.listed += 1
            self.problem(text)
        else:
            self.unlisted += 1

    async def check(
        self,
        admin: AdminClient,
        windows: Sequence[tuple[float, float]],
        strikes: Sequence[Strike],
    ) -> None:
        rows = await self.ledger_rows()
        await self.check_intents(rows)
        self.check_rows(rows, await self.rules())
        audit = await asyncio.to_thread(admin.audit)
        self.check_audit(audit, rows)
        await self.check_fill_up()
        if self.run.wallet is not None:
            # The fill-up's bookings are holds: Redis is compared once they have lapsed.
            still_open = await money.await_settled(
                self.run.database_url, self.run.config.payments.settle_seconds
            )
            if still_open is not None:
                self.problem(f"after the fill-up: {still_open}")
            await asyncio.sleep(lease_settle_seconds(self.run.config))
        if uses_redis_state(self.run.strategy):
            await self.check_redis(await self.ledger_rows())
        self.check_server_errors(windows)
        self.check_recoveries(strikes)
        self.check_answers()
        if self.unlisted:
            self.problem(f"... and {self.unlisted} more problems like those above")

    # --- the ledger's rows --------------------------------------------------------------

    async def ledger_rows(self) -> list[Row]:
        conn = await asyncpg.connect(self.run.database_url)
        try:
            records = await conn.fetch(
                "SELECT id, schedule_id, patient_id, hospital_id, department_id, number,"
                " status, idempotency_key, extract(epoch FROM created_at) AS created_at,"
                " request_id FROM bookings"
            )
        finally:
            await conn.close()
        return [
            Row(
                str(r["id"]),
                str(r["schedule_id"]),
                r["patient_id"],
                r["hospital_id"],
                r["department_id"],
                r["number"],
                r["status"] in _HELD,
                r["status"],
                r["idempotency_key"],
                float(r["created_at"]),
                str(r["request_id"]),
            )
            for r in records
        ]

    async def rules(self) -> tuple[int, int]:
        """max_per_day and max_per_department_per_day of the run's hospital."""
        conn = await asyncpg.connect(self.run.database_url)
        try:
            row = await conn.fetchrow(
                "SELECT max_per_day, max_per_department_per_day FROM hospitals WHERE id = $1",
                self.run.hospital_id,
            )
        finally:
            await conn.close()
        return (row[0], row[1]) if row is not None else (2, 1)

    async def check_intents(self, rows: Sequence[Row]) -> None:
        """Every confirmed booking exists once, as its owner sees it, cancelled only if its
        client cancelled it; an intent told "no" booked nothing."""
        history, result = self.run.history, self.result
        by_key = {(r.patient_id, r.key): r for r in rows if r.key is not None}
        views = await self.owner_views()
        for intent in self.run.intents:
            row = by_key.get((intent.patient_id, intent.key))
            confirmed = history.booking_ids(intent)
            if len(confirmed) > 1:
                result.double_booked += 1
                self.example(f"{intent.patient_id}: one key, 201s for {sorted(confirmed)}")
            for booking_id in confirmed:
                view = views.get(booking_id)
                paid = view is not None and bool(view.get("fee_cents"))
                expected = self.endings(booking_id, history.cancelled(intent), paid)
                status = view.get("status") if view is not None else None
                if row is None or row.id != booking_id or status not in expected:
                    result.lost += 1
                    self.example(
                        f"LOST: 201 {booking_id} to {intent.patient_id} "
                        f"({' or '.join(sorted(expected))} since), "
                        f"ledger: {row}, owner: {view}"
                    )
            last = history.last(intent)
            if row is not None and not confirmed and last is not None and last.settled:
                result.told_no_but_booked += 1
                self.example(
                    f"{intent.patient_id} was last answered {last.status} {last.detail} "
                    f"({last.phase}) but holds {row}; its requests: {_timeline(history, intent)}"
                )

    def endings(self, booking_id: str, cancelled: bool, paid: bool) -> frozenset[str]:
        """The statuses a booking a client was confirmed may have now (`paid`: of a schedule
        with a fee, a hold until paid)."""
        wallet = self.run.wallet
        if paid and wallet is not None:
            return wallet.endings(booking_id, cancelled)
        return frozenset({"cancelled" if cancelled else "booked"})

    def check_rows(self, rows: Sequence[Row], rules: tuple[int, int]) -> None:
        """Invariants 1-5 recounted from the active rows: capacity, numbers, one booking per
        patient and schedule, the per-patient limits, the blacklist."""
        active = [r for r in rows if r.active]
        capacity = {s.id: s.capacity for s in self._schedules()}
        per_schedule = Counter(r.schedule_id for r in active)
        for schedule_id, held in per_schedule.items():
            if held > capacity.get(schedule_id, held):
                self.result.oversold += 1
                self.problem(
                    f"schedule {schedule_id}: {held} active rows, capacity {capacity[schedule_id]}"
                )
        for what, values in (
            ("number", Counter((r.schedule_id, r.number) for r in active)),
            ("patient", Counter((r.schedule_id, r.patient_id) for r in active)),
        ):
            twice = [value for value, n in values.items() if n > 1]
            if twice:
                self.problem(f"{len(twice)} active rows share a {what}: {twice[:5]}")
        max_per_day, max_per_department = rules
        days = Counter((r.patient_id, r.hospital_id) for r in active)
        departments = Counter((r.patient_id, r.hospital_id, r.department_id) for r in active)
        broken = [p for p, n in days.items() if n > max_per_day] + [
            p for p, n in departments.items() if n > max_per_department
        ]
        self.result.limit_violations = len(broken)
        for patient in broken:
            self.example(f"limit broken by {patient}")
        for patient_id, since in self.run.blacklisted.items():
            late = [r for r in rows if r.patient_id == patient_id and r.created_at > since]
            self.result.blacklist_violations += len(late)
            for row in late:
                self.example(f"{patient_id} booked {row.id} after being blacklisted")

    async def owner_views(self) -> dict[str, dict[str, Any] | None]:
        """GET /v1/bookings/{id} as the owner, for every id a client saw in a 201."""
        owners = {
            a.booking_id: a.intent.patient_id
            for a in self.run.history.attempts
            if a.booking_id is not None and a.action is Action.BOOK
        }

        async def view(booking_id: str, patient_id: str) -> dict[str, Any] | None:
            answer = await self.get(f"/v1/bookings/{booking_id}", patient_id)
            return answer["booking"] if answer is not None else None

        found = await bounded([view(b, p) for b, p in owners.items()])
        return dict(zip(owners, found, strict=True))

    async def get(self, path: str, patient_id: str) -> dict[str, Any] | None:
        """A patient's read; None for a 404."""
        headers = {"Authorization": f"Bearer {self.run.token(patient_id)}"}
        async with self.session.get(self.base_url + path, headers=headers) as response:
            if response.status == 404:
                return None
            response.raise_for_status()
            answer: dict[str, Any] = await response.json()
            return answer

    def check_audit(self, audit: dict[str, Any], rows: Sequence[Row]) -> None:
        """The server's audit agrees with the rows (invariant 6: the audit counts them)."""
        for name in ("oversold", "duplicate_numbers", "duplicate_patients", "limit_violations"):
            if audit[name]:
                self.problem(f"audit: {name} = {audit[name]}")
        active = Counter(r.schedule_id for r in rows if r.active)
        for schedule in audit["schedules"]:
            if schedule["booked"] != active[str(schedule["id"])]:
                self.result.audit_mismatches += 1
                self.problem(
                    f"schedule {schedule['id']}: the audit counts {schedule['booked']} booked, "
                    f"the ledger has {active[str(schedule['id'])]} active rows"
                )

    # --- every number the ledger has free can be booked ----------------------------------

    async def check_fill_up(self) -> None:
        """Fresh patients book every number the ledger has free (cancelled ones included),
        then the next one is told sold out."""
        rows = await self.ledger_rows()
        active = Counter(r.schedule_id for r in rows if r.active)
        client = BookingClient(self.session, self.base_url, self.run.token, History(), timeout=10.0)
        deadline = time.monotonic() + 60.0

        async def book(schedule: SeededSchedule, patient_id: str) -> Attempt:
            intent = Intent(patient_id, schedule.id, uuid.uuid4().hex)
            return await client.send_until_settled(intent, "fill", attempts=None, deadline=deadline)

        for schedule in self.run.schedules:
            free = schedule.capacity - active[schedule.id]
            answers = await bounded(
                [book(schedule, f"fill-{schedule.id}-{n}") for n in range(free)], 16
            )
            booked = sum(1 for a in answers if a.outcome is Outcome.OK)
            extra = await book(schedule, f"fill-{schedule.id}-extra")
            if booked < free or extra.detail != "sold_out":
                self.result.unbookable += free - booked
                self.problem(
                    f"schedule {schedule.id}: {free} numbers free in the ledger, fresh "
                    f"patients booked {booked}; then {extra.status} {extra.detail}; "
                    f"answers {dict(Counter(a.detail for a in answers))}"
                )

    # --- Redis against the ledger --------------------------------------------------------

    async def check_redis(self, rows: Sequence[Row]) -> None:
        """Once the leases are over, Redis holds exactly the free numbers the ledger leaves,
        no lease, and (redis-lua) the patients' counters the active rows make. Read through
        the client the server uses: a cluster's, when it names a cluster node."""
        keys = KeySpace(self.run.prefix, self.run.strategy)
        slot = keys.slot(slot_tag(self.run.hospital_id, self.run.visit_date))
        # The crowd's slot only: a paid day of another hospital may be in the ledger too.
        active = [r for r in rows if r.active and r.hospital_id == self.run.hospital_id]
        held = Counter(r.schedule_id for r in active)
        client = await open_redis(self.run.redis_url)
        self.result.redis_mismatches = 0
        try:
            for schedule in self._schedules():
                free = await _free_numbers(client, slot.free(schedule.id))
                expected = schedule.capacity - held[schedule.id]
                if free != expected:
                    self.result.redis_mismatches += 1
                    self.problem(
                        f"schedule {schedule.id}: Redis has {free} free numbers, "
                        f"the ledger leaves {expected}"
                    )
            leases = await client.zcard(slot.leases)
            if leases:
                self.problem(f"{leases} leases still out in Redis after the lease time")
            if keeps_counters_in_redis(self.run.strategy):
                await self.check_counters(client, slot, active)
        finally:
            await client.aclose()

    async def check_counters(
        self, client: RedisClient, slot: SlotKeys, active: Sequence[Row]
    ) -> None:
        expected: dict[str, str] = {}
        counts: Counter[str] = Counter()
        for r in active:
            counts[f"{r.patient_id}:day"] += 1
            counts[f"{r.patient_id}:d:{r.department_id}"] += 1
            expected[f"{r.patient_id}:s:{r.schedule_id}"] = r.request_id
        expected.update((field, str(n)) for field, n in counts.items())
        in_redis = {
            os.fsdecode(field): os.fsdecode(value)  # bytes (or str, as redis-py types it)
            for field, value in (await client.hgetall(slot.counters)).items()
        }
        off = {
            field: (in_redis.get(field), expected.get(field))
            for field in {*in_redis, *expected}
            if in_redis.get(field) != expected.get(field)
        }
        self.result.counter_mismatches = len(off)
        if off:
            self.problem(
                f"{len(off)} patient counters in Redis differ from the ledger: "
                f"{dict(list(off.items())[:10])} (Redis, ledger)"
            )

    def _schedules(self) -> list[SeededSchedule]:
        probe = self.run.probe_schedule
        return [*self.run.schedules, *([probe] if probe is not None else [])]

    # --- what the clients saw ------------------------------------------------------------

    def check_recoveries(self, strikes: Sequence[Strike]) -> None:
        probes = defaultdict(list)
        for a in self.run.history.attempts:
            if a.phase == "probe":
                probes[a.intent.patient_id].append(a)
        for n, strike in enumerate(strikes):
            seconds = strike.first_success
            if seconds is None or seconds > FIRST_SUCCESS_LIMIT:
                answers = _answers(probes.get(f"probe-{n}", []))
                self.problem(
                    f"strike {n}: the first booking after recovery took {seconds} s; "
                    f"the probe was answered {answers}"
                )

    def check_answers(self) -> None:
        """Every outcome ended definite, and every 201 named its booking."""
        history = self.run.history
        if self.result.unresolved:
            last = _answers(history.last(i) for i in history.unsettled(self.run.intents))
            self.problem(
                f"{self.result.unresolved} unknown outcomes never got a definite answer; "
                f"last answers: {last}"
            )
        cancels = {a.intent for a in history.attempts if a.action is Action.CANCEL}
        open_cancels = history.unsettled(cancels, Action.CANCEL)
        if open_cancels:
            self.problem(f"{len(open_cancels)} cancellations never got a definite answer")
        if any(a.detail == "unreadable-201" for a in history.attempts):
            self.problem("some 201 answers carried no booking id")

    def check_server_errors(self, windows: Sequence[tuple[float, float]]) -> None:
        """503 busy naming a failed store call is expected inside a fault window only; a
        503 busy naming none (the strategy gave up under contention, which API.md allows at
        any time) is counted, not failed; any other 5xx is a failure anywhere."""
        outside: list[Attempt] = []
        for a in self.run.history.attempts:
            if a.status is None or a.status < 500:
                continue
            if a.status == 503 and any(a.overlaps(start, end) for start, end in windows):
                continue
            if a.status == 503 and a.reason is None:
                self.result.gave_up_outside_windows += 1
            else:
                outside.append(a)
        self.result.server_errors_outside_windows = len(outside)
        if outside:
            # When they came, counted from the end of the window before them (if any).
            ends = [end for _, end in windows]
            after = [
                round(a.started - max((e for e in ends if e < a.started), default=a.started), 2)
                for a in outside
            ]
            reasons = dict(Counter(a.reason for a in outside))
            self.problem(
                f"{len(outside)} answers were 5xx other than 503 busy inside a fault window, "
                f"or any 5xx outside one: {reasons}, "
                f"sent {min(after)}..{max(after)} s after the window before them closed"
            )


def _timeline(history: History, intent: Intent) -> str:
    """An intent's requests in order: their answers and when (s since the first was sent)."""
    attempts = history.of(intent)
    start = attempts[0].started if attempts else 0.0
    return ", ".join(
        f"{a.status} {a.detail} {a.started - start:.2f}-{a.ended - start:.2f}" for a in attempts
    )


def _answers(attempts: Iterable[Attempt | None]) -> dict[str, int]:
    """How often each answer came: "503 busy", "None TimeoutError", ..."""
    return dict(Counter(f"{a.status} {a.detail}" for a in attempts if a is not None))


async def _free_numbers(client: RedisClient, key: str) -> int:
    """The free numbers of a schedule: the bits set in its bitmap (none when the key is gone)."""
    return int(await client.bitcount(key))
