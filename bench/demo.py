"""Demo data for the pages (issue 14): two hospitals with departments, doctors, sessions
today and in the next days, and a crowd's worth of bookings, seeded through the public API
of a running server; then the links that open the patient page and the staff console
signed in (dev only: the tokens are minted with the server's SLOTRUSH_SECRET).

`slotrush serve --dev --demo` seeds its own server once it serves; `slotrush demo --url`
seeds another one that shares the secret.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from core.tokens import issue_token
from loadtest.client.seed import AdminClient, ApiError

TIMEZONE: Final = "Asia/Shanghai"
HOSPITALS: Final = {"riverside": "Riverside General", "northside": "Northside Clinic"}
DEPARTMENTS: Final = {
    "riverside": {
        "cardiology": "Cardiology",
        "dermatology": "Dermatology",
        "pediatrics": "Pediatrics",
    },
    "northside": {"general": "General practice"},
}
# (hospital, doctor, name, title, department, fee in cents, capacity)
DOCTORS: Final = (
    ("riverside", "dr-chen", "Dr. Chen Wei", "Chief physician", "cardiology", 3000, 20),
    ("riverside", "dr-li", "Dr. Li Na", "Attending", "cardiology", 0, 30),
    ("riverside", "dr-wang", "Dr. Wang Fang", "Associate chief", "dermatology", 1500, 25),
    ("riverside", "dr-zhao", "Dr. Zhao Lei", "Attending", "pediatrics", 0, 30),
    ("northside", "dr-sun", "Dr. Sun Yu", "Attending", "general", 0, 20),
)
DAYS: Final = 4
CROWD: Final = 60
PATIENT: Final = "demo-patient"
# The pages' tokens outlive a working day.
TOKEN_TTL: Final = 12 * 3600


@dataclass(frozen=True)
class Demo:
    """What the links and the check-in hint need."""

    verification_code: str


def seed(client: AdminClient, *, crowd: int = CROWD) -> Demo:
    """Seed the demo through the API (admin calls, then patients booking): idempotent
    enough to run twice, since a second run's bookings are refused as already booked."""
    for hospital, name in HOSPITALS.items():
        body = {"name": name, "timezone": TIMEZONE, "cancel_cutoff_minutes": 60}
        client.request("PUT", f"/v1/admin/hospitals/{hospital}", body)
        for department, title in DEPARTMENTS[hospital].items():
            path = f"/v1/admin/hospitals/{hospital}/departments/{department}"
            client.request("PUT", path, {"name": title})
    for hospital, doctor, name, title, department, fee, _ in DOCTORS:
        body = {"name": name, "title": title, "department_id": department, "fee_cents": fee}
        client.request("PUT", f"/v1/admin/hospitals/{hospital}/doctors/{doctor}", body)
    schedules = client.request("POST", "/v1/admin/schedules", {"schedules": _sessions()})
    today = _today().isoformat()
    free_today = [
        s
        for s in schedules["schedules"]
        if s["visit_date"] == today and s["fee_cents"] == 0 and s["hospital_id"] == "riverside"
    ]
    _crowd(client, schedules["schedules"], crowd)
    mine = _book(client, PATIENT, free_today[0]["id"])
    code = mine["verification_code"] if mine else "(booked before: see the patient page)"
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat()
    client.request("PUT", "/v1/admin/hospitals/riverside/blacklist/demo-p-059", {"until": until})
    return Demo(verification_code=code)


def _today() -> dt.date:
    return dt.datetime.now(ZoneInfo(TIMEZONE)).date()


def _sessions() -> list[dict[str, Any]]:
    return [
        {
            "hospital_id": hospital,
            "department_id": department,
            "doctor_id": doctor,
            "visit_date": (_today() + dt.timedelta(days=day)).isoformat(),
            "period": period,
            "capacity": capacity,
            "fee_cents": fee,
        }
        for hospital, doctor, _, _, department, fee, capacity in DOCTORS
        for day in range(DAYS)
        for period in ("am", "pm")
    ]


def _crowd(client: AdminClient, schedules: list[dict[str, Any]], crowd: int) -> None:
    """A crowd of patients, each booking a few sessions (the hospital's limits refuse some),
    with profiles for the analytics; some cancel and some of today's come in. Only a later
    day's booking is cancelled: today's may be past its cancel window (it closes an hour
    before the session, and the demo runs at any hour)."""
    today = _today().isoformat()
    for k in range(crowd):
        patient = f"demo-p-{k:03d}"
        birth = dt.date(1940 + (k * 7) % 70, 1 + k % 12, 1 + k % 28)
        client.request(
            "PUT",
            "/v1/me/profile",
            {"birth_date": birth.isoformat()},
            token=_patient(client, patient),
        )
        for step in range(3):
            schedule = schedules[(k * 5 + step * 11) % len(schedules)]
            booking = _book(client, patient, schedule["id"])
            if booking is None:
                continue
            if k % 9 == 0 and booking["visit_date"] > today:
                client.request(
                    "POST",
                    f"/v1/bookings/{booking['id']}/cancel",
                    {},
                    token=_patient(client, patient),
                )
            elif k % 4 == 0 and booking["status"] == "booked" and booking["visit_date"] == today:
                path = f"/v1/hospitals/{booking['hospital_id']}/check-ins"
                client.request("POST", path, {"verification_code": booking["verification_code"]})


def _book(client: AdminClient, patient: str, schedule_id: str) -> dict[str, Any] | None:
    try:
        answer = client.request(
            "POST", f"/v1/schedules/{schedule_id}/bookings", {}, token=_patient(client, patient)
        )
    except ApiError as exc:
        if exc.status == 409:
            return None
        raise
    booking: dict[str, Any] = answer["booking"]
    return booking


def _patient(client: AdminClient, patient: str) -> str:
    return issue_token(client.secret, subject=patient, ttl=TOKEN_TTL)


def links(url: str, secret: str, demo: Demo) -> list[str]:
    """The lines that open each page signed in. The token rides in the fragment, which the
    browser never sends to a server; the page keeps it for its tab only."""
    url = url.rstrip("/")

    def staff(hospital: str) -> str:
        return issue_token(secret, subject=f"staff-{hospital}", hospital_id=hospital, ttl=TOKEN_TTL)

    patient = issue_token(secret, subject=PATIENT, ttl=TOKEN_TTL)
    return [
        f"slotrush demo: seeded {', '.join(HOSPITALS.values())}; tokens for {TOKEN_TTL // 3600} h",
        f"  patient page ({PATIENT}):   {url}/book#token={patient}",
        f"  staff console (riverside):  {url}/console#token={staff('riverside')}",
        f"  staff console (northside):  {url}/console#token={staff('northside')}",
        f"  a code to check in today at riverside: {demo.verification_code}",
    ]


def seed_and_announce(url: str, secret: str, *, wait_seconds: float = 120.0) -> None:
    client = AdminClient(url, secret)
    client.wait_healthy(wait_seconds)
    for line in links(url, secret, seed(client)):
        print(line, flush=True)


# --- slotrush demo ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Seed demo data into a running server and print the pages' links."
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="default: %(default)s")


def run(args: argparse.Namespace) -> int:
    secret = os.environ.get("SLOTRUSH_SECRET")
    if not secret:
        print("slotrush demo: SLOTRUSH_SECRET must be the server's", file=sys.stderr)
        return 2
    seed_and_announce(args.url, secret, wait_seconds=10.0)
    return 0
