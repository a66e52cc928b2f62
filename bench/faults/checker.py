"""The checks after each scenario: what the clients were told, held against what the ledger
(and, for Redis strategies, Redis) holds."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bench.faults.config import uses_redis_state
from bench.faults.result import FIRST_SUCCESS_LIMIT, ScenarioResult, Strike
from bench.faults.services import Services
from bench.faults.workload import Run, bounded
from bench.history import Attempt, Outcome
from core.keys import KeySpace, slot_tag
from loadtest.client.seed import AdminClient

_EXAMPLES_LISTED = 25


def count_outcomes(result: ScenarioResult, run: Run) -> None:
    history = run.history
    counts = history.outcome_counts()
    result.requests = len(history.attempts)
    result.ok, result.failed = counts[Outcome.OK], counts[Outcome.FAILED]
    result.unknown = counts[Outcome.UNKNOWN]
    result.refused = sum(
        1 for a in history.attempts if a.outcome is Outcome.FAILED and a.status is None
    )
    result.patients = len(run.intents)
    uncertain = {a.intent for a in history.attempts if a.outcome is Outcome.UNKNOWN}
    result.uncertain = len(uncertain)
    result.unresolved = len(history.unsettled(run.intents))
    for intent in uncertain:
        last = history.last(intent)
        if last is not None and last.settled:
            if last.outcome is Outcome.OK:
                result.unknown_resolved_booked += 1
            else:
                result.unknown_resolved_none += 1


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
        services: Services,
        windows: Sequence[tuple[float, float]],
        strikes: Sequence[Strike],
    ) -> None:
        booked = await self.check_patients()
        audit = await asyncio.to_thread(admin.audit)
        self.check_audit(audit, booked)
        if uses_redis_state(self.run.strategy):
            await self.check_redis(services.redis.url, audit)
        self.check_server_errors(windows)
        self.check_recoveries(strikes)
        self.check_answers()

    def check_recoveries(self, strikes: Sequence[Strike]) -> None:
        for n, strike in enumerate(strikes):
            seconds = strike.first_success
            if seconds is None or seconds > FIRST_SUCCESS_LIMIT:
                probe = f"probe-{n}"
                answers = _answers(
                    a for a in self.run.history.attempts if a.intent.patient_id == probe
                )
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
        if any(a.detail == "unreadable-201" for a in history.attempts):
            self.problem("some 201 answers carried no booking id")

    async def check_patients(self) -> dict[str, int]:
        """Every confirmed booking exists once, as its owner sees it; a patient told "no"
        holds nothing. Returns the active bookings per schedule the patients hold."""
        history, result = self.run.history, self.result
        holdings = await self.holdings()
        views = await self.owner_views()
        booked: dict[str, int] = {}
        for intent in self.run.intents:
            held = holdings[intent.patient_id]
            booked[intent.schedule_id] = booked.get(intent.schedule_id, 0) + len(held)
            confirmed = history.booking_ids(intent)
            if len(confirmed) > 1 or len(held) > 1:
                result.double_booked += 1
                self.example(
                    f"{intent.patient_id}: one key, 201s for {sorted(confirmed)}, holds {held}"
                )
            for booking_id in confirmed:
                view = views.get(booking_id)
                if booking_id not in held or view is None or view.get("status") != "booked":
                    result.lost += 1
                    self.example(f"LOST: 201 {booking_id} to {intent.patient_id}, owner: {view}")
            last = history.last(intent)
            if held and not confirmed and last is not None and last.settled:
                result.told_no_but_booked += 1
                self.example(
                    f"{intent.patient_id} was last answered {last.status} {last.detail} "
                    f"({last.phase}) but holds {held}"
                )
        if self.unlisted:
            self.problem(f"... and {self.unlisted} more patients' problems like those above")
        return booked

    async def holdings(self) -> dict[str, list[str]]:
        """Each patient's active bookings on the schedule they wanted, from GET /v1/me/bookings."""
        wanted = {i.patient_id: i.schedule_id for i in self.run.intents}

        async def held(patient_id: str) -> list[str]:
            answer = await self.get("/v1/me/bookings", patient_id)
            assert answer is not None
            return [
                str(b["id"])
                for b in answer["bookings"]
                if str(b["schedule_id"]) == wanted[patient_id] and b["status"] == "booked"
            ]

        found = await bounded([held(p) for p in wanted])
        return dict(zip(wanted, found, strict=True))

    async def owner_views(self) -> dict[str, dict[str, Any] | None]:
        """GET /v1/bookings/{id} as the owner, for every id a client saw in a 201."""
        owners = {
            a.booking_id: a.intent.patient_id
            for a in self.run.history.attempts
            if a.booking_id is not None
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

    def check_audit(self, audit: dict[str, Any], booked: dict[str, int]) -> None:
        self.result.oversold = int(audit["oversold"])
        for name in ("oversold", "duplicate_numbers", "duplicate_patients", "limit_violations"):
            if audit[name]:
                self.problem(f"audit: {name} = {audit[name]}")
        for schedule in audit["schedules"]:
            held = booked.get(str(schedule["id"]))
            if held is not None and schedule["booked"] != held:
                self.result.audit_mismatches += 1
                self.problem(
                    f"schedule {schedule['id']}: the audit counts {schedule['booked']} booked, "
                    f"the patients hold {held}"
                )

    async def check_redis(self, redis_url: str, audit: dict[str, Any]) -> None:
        """Once the leases are over, Redis holds exactly capacity - booked free numbers."""
        booked = {str(s["id"]): int(s["booked"]) for s in audit["schedules"]}
        keys = KeySpace(self.run.prefix, self.run.strategy)
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self.result.redis_mismatches = 0
        try:
            for schedule in self.run.schedules:
                slot = keys.slot(slot_tag(schedule.hospital_id, self.run.visit_date))
                free = await _free_numbers(client, slot.free(schedule.id))
                expected = schedule.capacity - booked[schedule.id]
                if free != expected:
                    self.result.redis_mismatches += 1
                    self.problem(
                        f"schedule {schedule.id}: Redis has {free} free numbers, "
                        f"the ledger leaves {expected}"
                    )
        finally:
            await client.aclose()

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
                f"{len(outside)} answers were 5xx outside the fault windows: {reasons}, "
                f"sent {min(after)}..{max(after)} s after the window before them closed"
            )


def _answers(attempts: Iterable[Attempt | None]) -> dict[str, int]:
    """How often each answer came: "503 busy", "None TimeoutError", ..."""
    return dict(Counter(f"{a.status} {a.detail}" for a in attempts if a is not None))


async def _free_numbers(client: aioredis.Redis, key: str) -> int:
    """The free numbers of a schedule: a zset (redis-lua) or a list (redis-queue). A sold-out
    schedule's key is gone, as Redis deletes empty collections."""
    kind = await client.type(key)
    if kind == "zset":
        return int(await client.zcard(key))
    if kind == "list":
        return int(await client.llen(key))
    return 0
