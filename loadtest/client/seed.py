"""Seeding a run: the schedules it books and the admin calls.

Shared by the Locust scenarios and the benchmark harness. Plain blocking HTTP (urllib), so it
works the same in a gevent-patched Locust process and in the harness before the load starts.
Every run names its own hospital, so runs against a shared server never see each other's
schedules.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, replace
from typing import Any

from loadtest.client.tokens import admin_token, patient_token

# API.md accepts up to 10,000 schedules in one admin call.
_SCHEDULES_PER_CALL = 10_000
_PERIODS = ("am", "pm", "night")


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]


@dataclass(frozen=True, slots=True)
class SeededSchedule:
    id: str
    hospital_id: str
    department_id: str
    capacity: int


@dataclass(frozen=True, slots=True)
class SchedulePlan:
    """What a run asks the server to create: `count` schedules of `capacity` numbers each.

    Schedules spread over `departments` departments of one hospital on one date, so a patient
    who books several of them meets the department and daily limits; with `hospitals` above
    one, schedule k belongs to hospital k mod `hospitals` (a region's opening).
    """

    run_id: str
    count: int
    capacity: int
    opens_at: dt.datetime
    departments: int = 4
    label: str = "s"
    hospitals: int = 1
    # Above 0, a paid schedule: its bookings hold their number until paid (API.md 1.1).
    fee_cents: int = 0

    @property
    def hospital_id(self) -> str:
        return f"h-{self.run_id}"

    def hospital_of(self, k: int) -> str:
        return (
            self.hospital_id if self.hospitals == 1 else f"{self.hospital_id}-{k % self.hospitals}"
        )

    @property
    def visit_date(self) -> dt.date:
        return (self.opens_at + dt.timedelta(days=1)).date()

    def bodies(self) -> list[dict[str, Any]]:
        visit_date = self.visit_date.isoformat()
        return [
            {
                "hospital_id": self.hospital_of(k),
                "department_id": f"dept-{k % self.departments}",
                "doctor_id": f"doc-{self.label}-{k}",
                "visit_date": visit_date,
                "period": _PERIODS[k % len(_PERIODS)],
                "capacity": self.capacity,
                "fee_cents": self.fee_cents,
                "opens_at": self.opens_at.isoformat().replace("+00:00", "Z"),
            }
            for k in range(self.count)
        ]


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:300]}")
        self.status = status


class AdminClient:
    """The few admin and owner calls a run needs, blocking, with a generous timeout."""

    def __init__(self, base_url: str, secret: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self._admin = admin_token(secret)

    def create_schedules(self, plan: SchedulePlan) -> list[SeededSchedule]:
        bodies = plan.bodies()
        created: list[SeededSchedule] = []
        for start in range(0, len(bodies), _SCHEDULES_PER_CALL):
            chunk = bodies[start : start + _SCHEDULES_PER_CALL]
            answer = self.request("POST", "/v1/admin/schedules", {"schedules": chunk})
            created += [
                SeededSchedule(
                    str(s["id"]), s["hospital_id"], s["department_id"], int(s["capacity"])
                )
                for s in answer["schedules"]
            ]
        return created

    def audit(self) -> dict[str, Any]:
        return self.request("GET", "/v1/admin/audit")

    def booking(self, patient_id: str, booking_id: str) -> dict[str, Any] | None:
        """The booking as its owner sees it; None when the server says it does not exist."""
        try:
            answer = self.request(
                "GET", f"/v1/bookings/{booking_id}", token=patient_token(self.secret, patient_id)
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        booking: dict[str, Any] = answer["booking"]
        return booking

    def wait_healthy(self, deadline_seconds: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + deadline_seconds
        while True:
            try:
                return self.request("GET", "/healthz", token=None)
            except (OSError, ApiError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def request(
        self, method: str, path: str, body: object = None, *, token: str | None = ""
    ) -> dict[str, Any]:
        """One JSON call; token "" means the admin token, None means no Authorization."""
        headers: dict[str, str] = {}
        bearer = self._admin if token == "" else token
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return call_json(self.base_url, method, path, body, headers, timeout=self.timeout)


def call_json(
    base_url: str,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """One blocking JSON call; an error status raises ApiError."""
    headers = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base_url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            payload: dict[str, Any] = json.loads(answer.read() or b"{}")
            return payload
    except urllib.error.HTTPError as exc:
        raise ApiError(method, path, exc.code, exc.read().decode(errors="replace")) from None


def point_sandbox_at(sandbox_url: str, server_url: str) -> None:
    """Have the sandbox payment provider send its notices to this server (its POST /control),
    so a paid run needs only `slotrush sandbox-pay` beside the server."""
    webhook = f"{server_url.rstrip('/')}/v1/payments/sandbox/webhook"
    call_json(sandbox_url.rstrip("/"), "POST", "/control", {"webhook_url": webhook})


def probe_hold_window(client: AdminClient, plan: SchedulePlan) -> float:
    """How long the server lets an unpaid hold of the plan's hospital live, in seconds: one
    probe patient holds the number of a one-number paid schedule of its own (already open,
    outside the plan, so no tally sees it) and cancels it. The server decides the window (the
    hospital's minutes, or the database's dev/test seconds, README), not the client."""
    # Opened a minute ago, so a server whose clock runs behind ours does not answer not_open.
    probe = replace(plan, count=1, capacity=1, opens_at=opening_in(-60), label="probe")
    (schedule,) = client.create_schedules(probe)
    token = patient_token(client.secret, f"probe-{plan.run_id}")
    booking = client.request("POST", f"/v1/schedules/{schedule.id}/bookings", {}, token=token)
    held = booking["booking"]
    client.request("POST", f"/v1/bookings/{held['id']}/cancel", {}, token=token)
    expires, created = (
        dt.datetime.fromisoformat(held[k]) for k in ("hold_expires_at", "created_at")
    )
    return (expires - created).total_seconds()


def opening_in(seconds: float) -> dt.datetime:
    """An opening time `seconds` from now, so a crowd that gathers first meets the opening."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
