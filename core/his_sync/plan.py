"""What a feed (or an upsert) would change, decided from the ledger's schedules: pure
functions, so the dry run and the apply are the same plan.

A feed row names a session by its external_id. Absent from the hospital's live schedules,
it is created; present, its capacity, fee and opening time are brought to the row's (who,
when and where never change: a row that moves a session is a conflict); a live session
from the hospital's today on that the feed no longer names is suspended. A capacity cut
below a number bookings hold (or once held: a cancelled booking still names its number) is
a conflict and changes nothing of its row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from core.booking import timed
from core.domain import Code, Schedule, ScheduleIn
from core.errors import SlotrushError
from core.his_sync.feed import FeedRow, RowError
from core.localtime import local_date
from core.terms import BookingTerms


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    SUSPEND = "suspend"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    ERROR = "error"


Value = int | str | None


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    before: Value
    after: Value


@dataclass(frozen=True, slots=True)
class Update:
    """A live schedule brought to what its row says."""

    schedule: Schedule
    capacity: int
    fee_cents: int
    opens_at: dt.datetime
    line: int | None = None

    @property
    def updated(self) -> Schedule:
        return replace(
            self.schedule, capacity=self.capacity, fee_cents=self.fee_cents, opens_at=self.opens_at
        )

    @property
    def changes(self) -> tuple[Change, ...]:
        s = self.schedule
        pairs: list[tuple[str, Value, Value]] = [
            ("capacity", s.capacity, self.capacity),
            ("fee_cents", s.fee_cents, self.fee_cents),
            ("opens_at", _time(s.opens_at), _time(self.opens_at)),
        ]
        return tuple(Change(name, old, new) for name, old, new in pairs if old != new)

    @property
    def cut(self) -> bool:
        return self.capacity < self.schedule.capacity


@dataclass(frozen=True, slots=True)
class Outcome:
    """One line of the per-row diff."""

    action: Action
    line: int | None
    external_id: str | None
    schedule_id: int | None = None
    changes: tuple[Change, ...] = ()
    code: Code | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Highest:
    """The highest number of a schedule that bookings hold, and that any booking named."""

    held: int
    named: int


@dataclass
class Plan:
    creates: list[tuple[int, ScheduleIn]] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    suspends: list[Schedule] = field(default_factory=list)
    unchanged: int = 0
    # Conflicts and errors, in the order of their rows.
    refused: list[Outcome] = field(default_factory=list)

    def outcomes(self) -> list[Outcome]:
        """Every row that would change or is refused; unchanged rows are left out."""
        done = [
            Outcome(Action.CREATE, line, item.external_id, changes=_new(item))
            for line, item in self.creates
        ]
        done += [
            Outcome(Action.UPDATE, u.line, u.schedule.external_id, u.schedule.id, u.changes)
            for u in self.updates
        ]
        done += [Outcome(Action.SUSPEND, None, s.external_id, s.id) for s in self.suspends]
        done += self.refused
        return sorted(done, key=lambda o: (o.line is None, o.line or 0, o.schedule_id or 0))

    @property
    def conflicts(self) -> int:
        return sum(1 for o in self.refused if o.action is Action.CONFLICT)

    @property
    def errors(self) -> int:
        return sum(1 for o in self.refused if o.action is Action.ERROR)


@dataclass(frozen=True, slots=True)
class Hospital:
    """What a feed is checked against: the hospital's terms and what it may name."""

    id: str
    terms: BookingTerms
    departments: Collection[str]
    doctors: Collection[str]


def plan_feed(
    hospital: Hospital,
    rows: Sequence[FeedRow | RowError],
    live: Mapping[str, Schedule],
    now: dt.datetime,
) -> Plan:
    """The plan of a whole feed: every live session from today on that it does not name is
    suspended (a row in error still names its session, which is then left as it is)."""
    plan = Plan()
    named: set[str] = set()
    for row in rows:
        if row.external_id is not None:
            named.add(row.external_id)
        if isinstance(row, RowError):
            plan.refused.append(
                Outcome(Action.ERROR, row.line, row.external_id, None, (), row.code, row.reason)
            )
            continue
        _plan_row(plan, hospital, row, live.get(row.external_id), now)
    today = local_date(now, hospital.terms.zone)
    plan.suspends = [
        s for key, s in sorted(live.items()) if key not in named and s.visit_date >= today
    ]
    return plan


def _plan_row(
    plan: Plan, hospital: Hospital, row: FeedRow, schedule: Schedule | None, now: dt.datetime
) -> None:
    def refuse(action: Action, code: Code, reason: str) -> None:
        sid = schedule.id if schedule is not None else None
        plan.refused.append(Outcome(action, row.line, row.external_id, sid, (), code, reason))

    if row.department_id not in hospital.departments:
        return refuse(Action.ERROR, Code.DEPARTMENT_NOT_FOUND, "no such department")
    if row.doctor_id not in hospital.doctors:
        return refuse(Action.ERROR, Code.DOCTOR_NOT_FOUND, "no such doctor")
    item = ScheduleIn(
        hospital_id=hospital.id,
        department_id=row.department_id,
        doctor_id=row.doctor_id,
        visit_date=row.visit_date,
        period=row.period,
        capacity=row.capacity,
        fee_cents=row.fee_cents,
        opens_at=row.opens_at,
        external_id=row.external_id,
    )
    if schedule is not None and item.opens_at is None:
        # An existing session keeps its opening time unless the row names one.
        item = replace(item, opens_at=schedule.opens_at)
    if schedule is not None and moved(schedule, item):
        return refuse(Action.CONFLICT, Code.SCHEDULE_MOVED, MOVED)
    try:
        item = timed(item, hospital.terms, now, "")
    except SlotrushError as exc:
        if schedule is not None and update_of(schedule, item) is None:
            plan.unchanged += 1  # a past session named as it is: nothing to do
            return None
        return refuse(Action.ERROR, exc.code, exc.detail or exc.code.value)
    if schedule is None:
        plan.creates.append((row.line, item))
        return None
    update = update_of(schedule, item, row.line)
    if update is None:
        plan.unchanged += 1
    else:
        plan.updates.append(update)
    return None


MOVED = (
    "the session's department, doctor, visit_date or period differ from its schedule's; "
    "a session that moves needs a new external_id"
)


def moved(schedule: Schedule, item: ScheduleIn) -> bool:
    return (schedule.department_id, schedule.doctor_id, schedule.visit_date, schedule.period) != (
        item.department_id,
        item.doctor_id,
        item.visit_date,
        item.period,
    )


def update_of(schedule: Schedule, item: ScheduleIn, line: int | None = None) -> Update | None:
    """The update bringing `schedule` to `item` (same session), None if nothing differs."""
    update = Update(
        schedule, item.capacity, item.fee_cents, item.opens_at or schedule.opens_at, line
    )
    return update if update.changes else None


def cut_refusal(update: Update, highest: Highest | None) -> str | None:
    """Why a capacity cut cannot be applied, None if it can."""
    if highest is None or not update.cut:
        return None
    if highest.held > update.capacity:
        return f"number {highest.held} is held by a booking"
    if highest.named > update.capacity:
        return f"number {highest.named} was booked before (the ledger keeps every number named)"
    return None


def refuse_cuts(plan: Plan, highest: Mapping[int, Highest]) -> None:
    """Turn the capacity cuts below a number bookings hold or held into conflicts."""
    kept: list[Update] = []
    for update in plan.updates:
        reason = cut_refusal(update, highest.get(update.schedule.id))
        if reason is None:
            kept.append(update)
        else:
            plan.refused.append(
                Outcome(
                    Action.CONFLICT,
                    update.line,
                    update.schedule.external_id,
                    update.schedule.id,
                    update.changes,
                    Code.CAPACITY_BELOW_HELD,
                    reason,
                )
            )
    plan.updates = kept


def _new(item: ScheduleIn) -> tuple[Change, ...]:
    return (
        Change("capacity", None, item.capacity),
        Change("fee_cents", None, item.fee_cents),
        Change("opens_at", None, _time(item.opens_at)),
    )


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
