"""The verdict of a run: the client's tally held against the server's audit and bookings.

`evaluate` is pure (tally, audit, the bookings as GET returned them) so the Locust check and
the benchmark harness share it and it can be tested on hand-made inputs. The only slack it
allows is for outcomes the client never learnt (timeouts, dropped connections, users stopped
mid-request): a number may be missing from the sold count or held by an unconfirmed booking
only where such an outcome could explain it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtest.client.seed import AdminClient, ApiError
from loadtest.client.tally import Confirmed, Tally

# The default rules of API.md; a run that seeds other rules passes its own.
DEFAULT_MAX_PER_DAY = 2
DEFAULT_MAX_PER_DEPARTMENT = 1

# Statuses of a booking holding its number (API.md 1.1): any of them is "still held".
HELD_STATUSES = frozenset({"pending_payment", "booked", "attended", "no_show"})

# Counts that break an invariant of API.md; the others describe the run.
VIOLATIONS = (
    "oversold",
    "lost",
    "undersold",
    "duplicate_numbers",
    "duplicate_patients",
    "limit_violations",
    "unverified",
)


@dataclass
class Verdict:
    oversold: int = 0
    lost: int = 0
    undersold: int = 0
    duplicate_numbers: int = 0
    duplicate_patients: int = 0
    limit_violations: int = 0
    # Confirmed bookings whose GET failed every time: not proven kept, so not accepted.
    unverified: int = 0
    confirmed: int = 0
    unknown: int = 0
    unconfirmed: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(getattr(self, name) for name in VIOLATIONS)

    def summary(self) -> str:
        counts = ", ".join(f"{name}={getattr(self, name)}" for name in VIOLATIONS)
        head = "PASS" if self.ok else "FAIL"
        info = f"confirmed={self.confirmed} unknown={self.unknown} unconfirmed={self.unconfirmed}"
        return f"{head}: {counts}; {info}"

    def report(self) -> str:
        return check_report("invariant", self.summary(), self.details)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# A report names at most this many violations; the rest are counted.
_DETAILS_SHOWN = 50


def check_report(check: str, summary: str, details: list[str]) -> str:
    """A check's verdict line and its violations, for logs and Locust's test stop."""
    lines = [f"slotrush {check} check {summary}"]
    lines += [f"  - {detail}" for detail in details[:_DETAILS_SHOWN]]
    if len(details) > _DETAILS_SHOWN:
        lines.append(f"  ... and {len(details) - _DETAILS_SHOWN} more")
    return "\n".join(lines)


def evaluate(
    tally: Tally,
    audit: Mapping[str, Any],
    seen: Mapping[str, dict[str, Any] | None],
    *,
    max_per_day: int = DEFAULT_MAX_PER_DAY,
    max_per_department: int = DEFAULT_MAX_PER_DEPARTMENT,
) -> Verdict:
    """`seen` maps booking id -> the booking GET returned (None: 404); a confirmed booking
    missing from it could not be fetched."""
    verdict = Verdict(confirmed=len(tally.confirmed), unknown=tally.total_unknown())
    audited = {str(s["id"]): s for s in audit["schedules"]}
    ours = set(tally.started) | {c.schedule_id for c in tally.confirmed.values()}
    released = released_by_server(seen)
    active = [c for c in tally.active() if c.booking_id not in released]
    active_by_schedule = Counter(c.schedule_id for c in active)

    for schedule_id in sorted(ours):
        row = audited.get(schedule_id)
        if row is None:
            verdict.details.append(f"schedule {schedule_id} is missing from the audit")
            continue
        if int(row["booked"]) > int(row["capacity"]) or row.get("oversold"):
            verdict.oversold += 1
            verdict.details.append(
                f"schedule {schedule_id}: {row['booked']} booked of {row['capacity']} (oversold)"
            )
        verdict.unconfirmed += max(int(row["booked"]) - active_by_schedule[schedule_id], 0)

    _check_kept(verdict, tally, active, audited, seen)
    _check_undersold(verdict, tally, audited, released)
    _check_unique(verdict, active, audit)
    _check_limits(verdict, active, audit, max_per_day, max_per_department)
    return verdict


def released_by_server(seen: Mapping[str, dict[str, Any] | None]) -> set[str]:
    """Bookings the lifecycle ended without their patient (API.md 1.1): a hold that lapsed
    unpaid, or one the hospital cancelled by suspending its schedule. Their numbers are free
    again and they are not lost."""
    return {
        booking_id
        for booking_id, got in seen.items()
        if got is not None
        and (
            got.get("status") == "expired"
            or (got.get("status") == "cancelled" and got.get("cancelled_by") == "hospital")
        )
    }


def _check_kept(
    verdict: Verdict,
    tally: Tally,
    active: list[Confirmed],
    audited: Mapping[str, Mapping[str, Any]],
    seen: Mapping[str, dict[str, Any] | None],
) -> None:
    """Invariant 6: every 201 is a booking that GET returns and the audit counts (or that
    the server's lifecycle has released since)."""
    lost_by_schedule: Counter[str] = Counter()
    for confirmed in tally.confirmed.values():
        if confirmed.booking_id not in seen:
            verdict.unverified += 1
            continue
        problem = _mismatch(confirmed, seen[confirmed.booking_id], tally)
        if problem:
            lost_by_schedule[confirmed.schedule_id] += 1
            verdict.details.append(f"booking {confirmed.booking_id}: {problem}")
    active_by_schedule = Counter(c.schedule_id for c in active)
    for schedule_id, held in active_by_schedule.items():
        row = audited.get(schedule_id)
        counted = int(row["booked"]) if row is not None else 0
        if counted < held:
            verdict.details.append(
                f"schedule {schedule_id}: the audit counts {counted} active bookings, "
                f"the client holds {held}"
            )
        verdict.lost += max(lost_by_schedule[schedule_id], held - counted)
    verdict.lost += sum(n for s, n in lost_by_schedule.items() if s not in active_by_schedule)
    if verdict.unverified:
        verdict.details.append(f"{verdict.unverified} confirmed bookings could not be fetched")


def _mismatch(confirmed: Confirmed, got: dict[str, Any] | None, tally: Tally) -> str | None:
    if got is None:
        return "confirmed with 201 but GET answers 404"
    for name, expected in (
        ("schedule_id", confirmed.schedule_id),
        ("patient_id", confirmed.patient_id),
        ("number", str(confirmed.number)),
    ):
        if str(got.get(name)) != expected:
            return f"{name} was {expected}, GET answers {got.get(name)}"
    still_held = confirmed.booking_id not in tally.cancelled | tally.cancel_unknown
    released = got.get("status") == "expired" or got.get("cancelled_by") == "hospital"
    if still_held and got.get("status") not in HELD_STATUSES and not released:
        return f"never cancelled by its patient but its status is {got.get('status')!r}"
    return None


def _check_undersold(
    verdict: Verdict, tally: Tally, audited: Mapping[str, Any], released: set[str]
) -> None:
    """A schedule that told someone sold_out must have no free number left, except numbers
    that cancellations, lapsed holds or a suspension gave back, or that an attempt of
    unknown outcome may have freed."""
    cancelled_by_schedule = Counter(
        tally.confirmed[b].schedule_id
        for b in tally.cancelled | tally.cancel_unknown | released
        if b in tally.confirmed
    )
    for schedule_id in sorted(tally.sold_out_seen):
        row = audited.get(schedule_id)
        if row is None:
            continue
        free = int(row["capacity"]) - int(row["booked"])
        excused = cancelled_by_schedule[schedule_id] + tally.unknown_outcomes(schedule_id)
        if free > excused:
            verdict.undersold += free - excused
            verdict.details.append(
                f"schedule {schedule_id} answered sold_out yet {free} numbers are free "
                f"({excused} explained by cancellations or unknown outcomes)"
            )


def _check_unique(verdict: Verdict, active: list[Confirmed], audit: Mapping[str, Any]) -> None:
    """Invariants 2 and 3, seen from both sides: the audit's counts and the client's 201s."""
    numbers = _groups_over(active, lambda c: (c.schedule_id, c.number), 1)
    patients = _groups_over(active, lambda c: (c.schedule_id, c.patient_id), 1)
    verdict.duplicate_numbers = max(int(audit["duplicate_numbers"]), len(numbers))
    verdict.duplicate_patients = max(int(audit["duplicate_patients"]), len(patients))
    verdict.details += [f"number {n} of schedule {s} confirmed twice" for s, n in numbers]
    verdict.details += [f"patient {p} confirmed twice on schedule {s}" for s, p in patients]


def _check_limits(
    verdict: Verdict,
    active: list[Confirmed],
    audit: Mapping[str, Any],
    max_per_day: int,
    max_per_department: int,
) -> None:
    """Invariant 4: the per-day and per-department limits, from both sides."""
    day = _groups_over(active, lambda c: (c.patient_id, c.hospital_id, c.visit_date), max_per_day)
    department = _groups_over(
        active,
        lambda c: (c.patient_id, c.hospital_id, c.visit_date, c.department_id),
        max_per_department,
    )
    verdict.limit_violations = max(int(audit["limit_violations"]), len(day) + len(department))
    verdict.details += [f"over the daily limit: {key}" for key in day]
    verdict.details += [f"over the department limit: {key}" for key in department]


def _groups_over(
    bookings: Iterable[Confirmed], key: Callable[[Confirmed], tuple[Any, ...]], limit: int
) -> list[tuple[Any, ...]]:
    counts = Counter(key(c) for c in bookings)
    return [k for k, n in counts.items() if n > limit]


# --- the blocking check used by the Locust scenarios ----------------------------------------


def fetch_bookings(
    client: AdminClient, bookings: Iterable[Confirmed], *, workers: int = 16, attempts: int = 3
) -> dict[str, dict[str, Any] | None]:
    """GET every booking as its owner; a booking that fails every attempt is left out."""

    def fetch(confirmed: Confirmed) -> tuple[str, dict[str, Any] | None] | None:
        for attempt in range(attempts):
            try:
                return confirmed.booking_id, client.booking(
                    confirmed.patient_id, confirmed.booking_id
                )
            except (OSError, ApiError):
                time.sleep(0.2 * (attempt + 1))
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(found for found in pool.map(fetch, bookings) if found is not None)


def check(client: AdminClient, tally: Tally) -> Verdict:
    audit = client.audit()
    seen = fetch_bookings(client, tally.confirmed.values())
    return evaluate(tally, audit, seen)
