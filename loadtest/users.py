"""Locust users: patients with their own JWT, behaving as the chosen scenario asks.

Every answer is judged the way a front end would: the 409s a crowd expects (sold_out,
already_booked, daily_limit, department_limit, not_open) are successes; busy and
rate_limited are retried after their Retry-After; 5xx other than busy, and any code the
contract does not give for the call, are failures. Every booking outcome also goes into the
process's tally, which the invariant check holds against the server at test stop.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

import gevent
from gevent.pool import Group
from locust import FastHttpUser, constant, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment

from loadtest.client.invariants import Verdict
from loadtest.client.lifecycle import LifecycleVerdict
from loadtest.client.tally import Tally
from loadtest.client.tokens import patient_token

EXPECTED_BOOKING_REFUSALS = frozenset(
    {"sold_out", "already_booked", "daily_limit", "department_limit"}
)
RETRYABLE = frozenset({429, 503})
# Per booking attempt; a patient pressing "book" more often than this has given up.
MAX_RETRIES = 20
HOT_SHARE = 0.9
DOUBLE_CLICK_SHARE = 0.1
BOOK_NAME = "/v1/schedules/[id]/bookings"


@dataclass(frozen=True, slots=True)
class Target:
    id: str
    department_id: str


@dataclass
class Crowd:
    """What the users of one Locust process share: the run's plan and their tally."""

    secret: str
    scenario: str = "flash"
    schedules: list[Target] = field(default_factory=list)
    opens_at: float = 0.0  # epoch seconds
    arrival_window: float = 1.0
    ready: bool = False
    tally: Tally = field(default_factory=Tally)
    verdict: Verdict | None = None
    # The run's own hospital (the lifecycle check reads its ledger rows) and that verdict.
    hospital_id: str | None = None
    lifecycle: LifecycleVerdict | None = None

    def plan(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "hospital_id": self.hospital_id,
            "schedules": [[t.id, t.department_id] for t in self.schedules],
            "opens_at": self.opens_at,
            "arrival_window": self.arrival_window,
        }

    def adopt(self, plan: dict[str, Any]) -> None:
        self.scenario = plan["scenario"]
        self.hospital_id = plan.get("hospital_id")
        self.schedules = [Target(sid, dept) for sid, dept in plan["schedules"]]
        self.opens_at = plan["opens_at"]
        self.arrival_window = plan["arrival_window"]
        self.ready = True


_crowds: WeakKeyDictionary[Environment, Crowd] = WeakKeyDictionary()


def crowd_of(environment: Environment) -> Crowd:
    crowd = _crowds.get(environment)
    if crowd is None:
        options = environment.parsed_options
        secret = getattr(options, "secret", "") or ""
        crowd = _crowds[environment] = Crowd(secret=secret)
    return crowd


class Patient(FastHttpUser):
    """One patient. The scenario decides what they do once the numbers open."""

    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0
    # Scenario -> the name of the method that is one step of that patient's life.
    BEHAVIOURS: ClassVar[dict[str, str]] = {
        "flash": "crowd_step",
        "hot": "crowd_step",
        "smoke": "crowd_step",
        "churn": "churn_step",
        "sustained": "sustained_step",
    }

    def on_start(self) -> None:
        self.crowd = crowd_of(self.environment)
        _wait_for(lambda: self.crowd.ready, seconds=60)
        self.patient_id = f"lt-{uuid.uuid4().hex[:20]}"
        self.auth = {"Authorization": f"Bearer {patient_token(self.crowd.secret, self.patient_id)}"}
        self.held: list[dict[str, Any]] = []
        self.attempted = False
        # The second press of a double-click runs beside the user's own greenlet; it must
        # stop with the user, or it would book after the tally has been checked.
        self.presses = Group()
        # Patients wait on the page and press "book" within the arrival window of the opening.
        arrive_at = self.crowd.opens_at + random.uniform(0, self.crowd.arrival_window)
        gevent.sleep(max(arrive_at - time.time(), 0))

    def on_stop(self) -> None:
        self.presses.kill()

    @task
    def step(self) -> None:
        getattr(self, self.BEHAVIOURS[self.crowd.scenario])()

    # --- scenarios ---------------------------------------------------------------------

    def crowd_step(self) -> None:
        """Book once (sometimes double-clicking); a loser tries one other schedule; then
        check "my bookings" now and then."""
        if not self.attempted:
            self.attempted = True
            booked = self.book(self.pick(), double_click=random.random() < DOUBLE_CLICK_SHARE)
            if booked is None and random.random() < 0.5:
                self.book(self.pick())
            self.my_bookings()
        gevent.sleep(random.uniform(5, 10))
        self.my_bookings()

    def churn_step(self) -> None:
        """Hold a number briefly, give it back, try again: numbers keep changing hands."""
        if self.held and random.random() < 0.6:
            self.cancel(self.held.pop(random.randrange(len(self.held))))
        else:
            self.book(self.pick(), double_click=random.random() < DOUBLE_CLICK_SHARE)
        gevent.sleep(random.uniform(0.5, 2.0))

    def sustained_step(self) -> None:
        roll = random.random()
        if roll < 0.5:
            self.view_schedule(self.pick())
        elif roll < 0.75:
            self.book(self.pick(), double_click=random.random() < DOUBLE_CLICK_SHARE)
        elif roll < 0.9 or not self.held:
            self.my_bookings()
        else:
            self.cancel(self.held.pop(random.randrange(len(self.held))))
        gevent.sleep(random.uniform(0.5, 1.5))

    def pick(self) -> Target:
        schedules = self.crowd.schedules
        if self.crowd.scenario == "hot" and random.random() < HOT_SHARE:
            return schedules[0]
        return random.choice(schedules)

    # --- calls -------------------------------------------------------------------------

    def book(self, target: Target, *, double_click: bool = False) -> dict[str, Any] | None:
        """One press of "book" (two at once for a double-click, with one Idempotency-Key);
        busy answers are pressed again after Retry-After. Returns the booking, if any."""
        headers = {**self.auth, "Content-Type": "application/json"}
        if double_click:
            headers["Idempotency-Key"] = uuid.uuid4().hex
            presses = [self.presses.spawn(self._press, target, headers) for _ in range(2)]
            gevent.joinall(presses)
            answers = [p.value for p in presses]
        else:
            answers = [self._press(target, headers)]
        booked = {b["id"]: b for b in answers if b is not None}
        if len(booked) > 1:
            # Two bookings for one key: the invariant check will also see the duplicate.
            self.environment.events.request.fire(
                request_type="CHECK",
                name="idempotency",
                response_time=0,
                response_length=0,
                exception=AssertionError(f"one Idempotency-Key booked twice: {sorted(booked)}"),
            )
        self.held += [b for b in booked.values() if b["id"] not in {h["id"] for h in self.held}]
        return next(iter(booked.values()), None)

    def _press(self, target: Target, headers: dict[str, str]) -> dict[str, Any] | None:
        tally = self.crowd.tally
        tally.attempt_started(target.id)
        path = f"/v1/schedules/{target.id}/bookings"
        for _ in range(MAX_RETRIES):
            with self.client.post(
                path, data="{}", headers=headers, name=BOOK_NAME, catch_response=True
            ) as resp:
                status, code = resp.status_code, _code(resp)
                if status == 201:
                    resp.success()
                    booking: dict[str, Any] = resp.json()["booking"]
                    tally.booked(booking)
                    return booking
                if status == 409 and code in EXPECTED_BOOKING_REFUSALS:
                    resp.success()
                    tally.rejected(target.id, status, code, self.patient_id)
                    return None
                if status in RETRYABLE or (status == 409 and code == "not_open"):
                    resp.success()
                    tally.retried(code or str(status))
                    pause = _retry_after(resp) if status in RETRYABLE else 0.2
                elif status == 0 or status >= 500:
                    resp.failure(f"no usable answer: {status} {code or resp.error!r}")
                    tally.outcome_unknown(target.id, code or "no_answer")
                    return None
                else:
                    resp.failure(f"unexpected answer to a booking: {status} {code}")
                    tally.rejected(target.id, status, code or str(status), self.patient_id)
                    return None
            gevent.sleep(pause)
        tally.outcome_unknown(target.id, "gave_up_retrying")
        return None

    def cancel(self, booking: dict[str, Any]) -> None:
        booking_id = str(booking["id"])
        with self.client.post(
            f"/v1/bookings/{booking_id}/cancel",
            data="{}",
            headers={**self.auth, "Content-Type": "application/json"},
            name="/v1/bookings/[id]/cancel",
            catch_response=True,
        ) as resp:
            status, code = resp.status_code, _code(resp)
            if status == 200:
                resp.success()
                self.crowd.tally.cancel_answered(booking_id, status, "ok")
            elif status == 409 and code == "cancel_window_closed":
                resp.success()
                self.crowd.tally.cancel_answered(booking_id, status, code)
            elif status == 0 or status >= 500:
                resp.failure(f"no usable answer to a cancel: {status} {code}")
                self.crowd.tally.cancel_lost(booking_id, code or "no_answer")
            else:
                resp.failure(f"unexpected answer to a cancel: {status} {code}")
                self.crowd.tally.cancel_answered(booking_id, status, code or str(status))

    def my_bookings(self) -> None:
        self._read("/v1/me/bookings", "/v1/me/bookings")

    def view_schedule(self, target: Target) -> None:
        self._read(f"/v1/schedules/{target.id}", "/v1/schedules/[id]")

    def _read(self, path: str, name: str) -> None:
        with self.client.get(path, headers=self.auth, name=name, catch_response=True) as resp:
            if resp.status_code == 200:
                resp.success()
            else:
                resp.failure(f"unexpected answer: {resp.status_code} {_code(resp)}")


def _code(resp: ResponseContextManager) -> str:
    """The problem's stable code, or "" when the answer is not a problem body."""
    if resp.status_code < 400 or not resp.content:
        return ""
    try:
        return str(resp.json().get("code", ""))
    except (ValueError, AttributeError):
        return ""


def _retry_after(resp: ResponseContextManager) -> float:
    value = resp.headers.get("Retry-After") if resp.headers else None
    try:
        return float(value) if isinstance(value, str) else 1.0
    except ValueError:
        return 1.0


def _wait_for(condition: Callable[[], bool], *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the run's schedules never arrived (was the test seeded?)")
        gevent.sleep(0.05)
