"""Locust users: patients with their own JWT, behaving as the chosen scenario asks.

Every answer is judged the way a front end would: the 409s a crowd expects (sold_out,
already_booked, daily_limit, department_limit, not_open) are successes; busy and
rate_limited are retried after their Retry-After; 5xx other than busy, and any code the
contract does not give for the call, are failures. Every booking outcome also goes into the
process's tally, which the invariant check holds against the server at test stop.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

import gevent
from gevent.pool import Group
from locust import FastHttpUser, constant, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment

from loadtest.client.invariants import Verdict
from loadtest.client.lifecycle import LAPSE_SLACK_SECONDS, LifecycleVerdict
from loadtest.client.tally import Tally
from loadtest.client.tokens import patient_token
from loadtest.shapes import SECOND_WAVE_SECONDS, second_wave_delay

EXPECTED_BOOKING_REFUSALS = frozenset(
    {"sold_out", "already_booked", "daily_limit", "department_limit"}
)
RETRYABLE = frozenset({429, 503})
# Per booking attempt; a patient pressing "book" more often than this has given up.
MAX_RETRIES = 20
HOT_SHARE = 0.9
DOUBLE_CLICK_SHARE = 0.1
BOOK_NAME = "/v1/schedules/[id]/bookings"
# pay-or-drop: what the first wave does with its holds, in turn: of every ten, seven pay, two
# walk away, one pays and cancels. In turn rather than by chance, so a small crowd shows all.
CHOICES = ("pay",) * 7 + ("abandon",) * 2 + ("cancel",)
# How often a patient looks at their booking while the provider's notice is on its way, and
# how long a second-wave patient told sold_out waits before asking again.
POLL_SECONDS = 0.25
ASK_AGAIN_SECONDS = 0.5


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
    # Seconds an unpaid hold lives (paid scenarios; the server said so at seeding).
    hold_window: float = 0.0
    # Where patients pay: the sandbox provider the server uses (paid scenarios; the master's
    # --sandbox-url, so workers need not be told).
    sandbox_url: str = ""
    ready: bool = False
    tally: Tally = field(default_factory=Tally)
    # How many holds the first wave has decided about (pay-or-drop).
    decided: Iterator[int] = field(default_factory=itertools.count)
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
            "hold_window": self.hold_window,
            "sandbox_url": self.sandbox_url,
        }

    def adopt(self, plan: dict[str, Any]) -> None:
        self.scenario = plan["scenario"]
        self.hospital_id = plan.get("hospital_id")
        self.schedules = [Target(sid, dept) for sid, dept in plan["schedules"]]
        self.opens_at = plan["opens_at"]
        self.arrival_window = plan["arrival_window"]
        self.hold_window = plan.get("hold_window", 0.0)
        self.sandbox_url = plan.get("sandbox_url", "")
        self.ready = True

    @property
    def second_wave_at(self) -> float:
        """Epoch seconds when pay-or-drop's second wave asks for the freed numbers."""
        return self.opens_at + second_wave_delay(self.arrival_window, self.hold_window)


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
        "pay-or-drop": "pay_or_drop_step",
    }

    def on_start(self) -> None:
        self.crowd = crowd_of(self.environment)
        _wait_for(lambda: self.crowd.ready, seconds=60)
        self.patient_id = f"lt-{uuid.uuid4().hex[:20]}"
        self.auth = {"Authorization": f"Bearer {patient_token(self.crowd.secret, self.patient_id)}"}
        self.held: list[dict[str, Any]] = []
        self.attempted = False
        # Came after the opening: in pay-or-drop, one of the second wave.
        self.late = time.time() > self.crowd.opens_at
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
            self.book_or_try_another(double_click=random.random() < DOUBLE_CLICK_SHARE)
            self.my_bookings()
        gevent.sleep(random.uniform(5, 10))
        self.my_bookings()

    def pay_or_drop_step(self) -> None:
        """The first wave holds a number at the opening, then pays, walks away or pays and
        cancels; the second wave books what the walkers freed. Then "my bookings" now and
        then."""
        if not self.attempted:
            self.attempted = True
            if self.late:
                self.book_freed_number()
            else:
                self.hold_and_decide()
        gevent.sleep(random.uniform(5, 10))
        self.my_bookings()

    def hold_and_decide(self) -> None:
        held = self.book_or_try_another()
        if held is None or held["status"] != "pending_payment":
            return
        choice = CHOICES[next(self.crowd.decided) % len(CHOICES)]
        if choice == "pay":
            self.pay(held)
        elif choice == "abandon":
            self.crowd.tally.abandoned()  # the hold lapses and its number is free again
        elif self.pay(held):
            # Cancelled once paid, so the fee goes back (API.md 1.1); a hold that lapsed
            # first was refunded already (a late payment) and has nothing to cancel.
            settled = self.await_settled(held)
            if settled == "booked":
                self.cancel(held)
            else:
                self.crowd.tally.payment_answered("cancel skipped", 0, settled or "unknown")

    def book_freed_number(self) -> None:
        """Second wave: from when the first wave's holds expire, ask until a number comes
        (then pay for it) or the wave is over."""
        crowd = self.crowd
        arrive_at = crowd.second_wave_at + random.uniform(0, crowd.arrival_window)
        gevent.sleep(max(arrive_at - time.time(), 0))
        while time.time() < crowd.second_wave_at + SECOND_WAVE_SECONDS:
            booked = self.book(self.pick())
            if booked is not None:
                if booked["status"] == "pending_payment":
                    self.pay(booked)
                return
            gevent.sleep(ASK_AGAIN_SECONDS)

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

    def book_or_try_another(self, *, double_click: bool = False) -> dict[str, Any] | None:
        """One press of "book"; half the losers try one other schedule."""
        booked = self.book(self.pick(), double_click=double_click)
        if booked is None and random.random() < 0.5:
            booked = self.book(self.pick())
        return booked

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
        with self._post(f"/v1/bookings/{booking_id}/cancel", "/v1/bookings/[id]/cancel") as resp:
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

    def pay(self, booking: dict[str, Any]) -> bool:
        """The checkout, then the patient pays at the provider: True once the provider took
        the money (the server hears of it by the provider's notice, a moment later)."""
        with self._post(
            f"/v1/bookings/{booking['id']}/payments", "/v1/bookings/[id]/payments"
        ) as resp:
            status, code = resp.status_code, _code(resp)
            self.crowd.tally.payment_answered("pay", status, code or "ok")
            if status == 409 and code == "invalid_state":
                resp.success()  # the hold lapsed before its patient got to pay
                return False
            if status != 201:
                resp.failure(f"unexpected answer to a checkout: {status} {code}")
                return False
            resp.success()
            ref = resp.json()["payment"]["provider_ref"]
        with self.client.post(
            f"{self.crowd.sandbox_url}/checkouts/{ref}/complete",
            data=json.dumps({"outcome": "succeeded"}),
            headers={"Content-Type": "application/json"},
            name="sandbox /checkouts/[ref]/complete",
            catch_response=True,
        ) as resp:
            self.crowd.tally.payment_answered("complete", resp.status_code, "succeeded")
            if resp.status_code != 200:
                resp.failure(f"the sandbox provider answered {resp.status_code}")
                return False
            resp.success()
            return True

    def await_settled(self, booking: dict[str, Any]) -> str:
        """The booking's status once it leaves pending_payment (its payment's notice came,
        or its hold lapsed), or as it is when invariant 9 says the lapse must have come; ""
        when it cannot be read."""
        expires = dt.datetime.fromisoformat(booking["hold_expires_at"]).timestamp()
        while True:
            status = self.status_of(booking)
            if status != "pending_payment" or time.time() > expires + LAPSE_SLACK_SECONDS:
                return status
            gevent.sleep(POLL_SECONDS)

    def status_of(self, booking: dict[str, Any]) -> str:
        with self.client.get(
            f"/v1/bookings/{booking['id']}",
            headers=self.auth,
            name="/v1/bookings/[id]",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"unexpected answer: {resp.status_code} {_code(resp)}")
                return ""
            resp.success()
            return str(resp.json()["booking"]["status"])

    def _post(self, path: str, name: str) -> ResponseContextManager:
        """The patient's POST of an empty JSON body; the caller judges the answer."""
        return self.client.post(
            path,
            data="{}",
            headers={**self.auth, "Content-Type": "application/json"},
            name=name,
            catch_response=True,
        )

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
