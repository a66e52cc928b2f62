"""Every strategy against a small pure-Python model of the rules and the lifecycle.

Hypothesis generates sequences of book, cancel and blacklist operations by a few patients on a
few schedules across departments and dates, under generated rules, mixed with the lifecycle's
transitions (a hold lapsing, a schedule suspended, a check-in, day-end settlement); each
step's answer must be one the model allows, and the ledger must end up holding what the model
holds. Examples share one database: each gets a hospital and patients of its own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from core.booking import BookingService
from core.domain import CANCELLABLE, Booking, BookingStatus, Code, Rules, ScheduleStatus
from core.errors import SlotrushError
from core.lifecycle import expiry
from core.operations import HospitalOperations
from core.stores import Stores
from tests.invariants import Observed, violations
from tests.scenarios import create, schedule_in, utc_today


@dataclass(frozen=True)
class Slot:
    department: str
    # Days after the run's today (its schedules are made then); TODAY is the visit date of
    # check-ins and settlement, AHEAD a week later like tests.scenarios.VISIT_DATE.
    day: int
    capacity: int
    fee_cents: int = 0


TODAY = 0
AHEAD = 7
# Three departments, three dates, small capacities: every rule is reachable in a few steps;
# one paid schedule (its bookings are holds) and one of today (check-in, settlement).
SLOTS = (
    Slot("dA", AHEAD, 1),
    Slot("dA", AHEAD, 2),
    Slot("dA", AHEAD, 1),
    Slot("dB", AHEAD, 1),
    Slot("dA", AHEAD + 1, 2),
    Slot("dB", AHEAD + 1, 2, fee_cents=900),
    Slot("dC", TODAY, 2),
)
PATIENTS = 3


@dataclass(frozen=True)
class Book:
    patient: int
    slot: int


@dataclass(frozen=True)
class Cancel:
    patient: int
    # Which booking made so far, modulo their count: often another patient's, on purpose.
    booking: int


@dataclass(frozen=True)
class Blacklist:
    patient: int
    expired: bool


@dataclass(frozen=True)
class Unblacklist:
    patient: int


@dataclass(frozen=True)
class Lapse:
    """A booking's hold runs out (only a hold of the paid schedule has one), then expiry runs."""

    booking: int


@dataclass(frozen=True)
class Suspend:
    slot: int


@dataclass(frozen=True)
class CheckIn:
    booking: int


@dataclass(frozen=True)
class Settle:
    """Day-end settlement of today."""


Operation = Book | Cancel | Blacklist | Unblacklist | Lapse | Suspend | CheckIn | Settle

patients = st.integers(0, PATIENTS - 1)
books = st.builds(Book, patients, st.integers(0, len(SLOTS) - 1))
cancels = st.builds(Cancel, patients, st.integers(0, 15))
blacklists = st.builds(Blacklist, patients, st.booleans())
unblacklists = st.builds(Unblacklist, patients)
# Weighted by repetition: mostly bookings, so schedules fill and limits are reached.
slots = st.integers(0, len(SLOTS) - 1)
lifecycle = st.one_of(
    st.builds(Lapse, st.integers(0, 15)),
    st.builds(Suspend, slots),
    st.builds(CheckIn, st.integers(0, 15)),
    st.just(Settle()),
)
operations = st.sampled_from(
    [books, books, books, books, cancels, cancels, blacklists, unblacklists, lifecycle]
).flatmap(lambda kind: kind)
rules = st.builds(
    Rules, max_per_day=st.integers(1, 3), max_per_department_per_day=st.integers(1, 2)
)


@dataclass
class Model:
    """The rules of API.md over (patient, slot) pairs, with no concurrency to worry about."""

    rules: Rules
    # Bookings holding their numbers: booking id -> (patient, slot, number).
    active: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    # The state of every booking made.
    status: dict[int, BookingStatus] = field(default_factory=dict)
    blacklisted: set[int] = field(default_factory=set)
    suspended: set[int] = field(default_factory=set)

    def answers(self, patient: int, slot: int) -> set[Code]:
        """The codes a booking may be refused with; empty when it must succeed.

        A suspended schedule is closed. Patient rules are answered in one order (blacklist,
        same schedule, day, department); whether a full schedule is reported before or after
        them is left to the strategy.
        """
        if slot in self.suspended:
            return {Code.SCHEDULE_CLOSED}
        patient_rule = next(
            (code for code, broken in self._patient_rules(patient, slot) if broken), None
        )
        codes = {patient_rule} if patient_rule is not None else set()
        if len(self._held_numbers(slot)) >= SLOTS[slot].capacity:
            codes.add(Code.SOLD_OUT)
        return codes

    def _patient_rules(self, patient: int, slot: int) -> list[tuple[Code, bool]]:
        mine = [s for p, s, _ in self.active.values() if p == patient]
        same_day = [s for s in mine if SLOTS[s].day == SLOTS[slot].day]
        same_dept = [s for s in same_day if SLOTS[s].department == SLOTS[slot].department]
        return [
            (Code.BLACKLISTED, patient in self.blacklisted),
            (Code.ALREADY_BOOKED, slot in mine),
            (Code.DAILY_LIMIT, len(same_day) >= self.rules.max_per_day),
            (Code.DEPARTMENT_LIMIT, len(same_dept) >= self.rules.max_per_department_per_day),
        ]

    def _held_numbers(self, slot: int) -> set[int]:
        return {n for _, s, n in self.active.values() if s == slot}

    def free_numbers(self, slot: int) -> set[int]:
        return set(range(1, SLOTS[slot].capacity + 1)) - self._held_numbers(slot)

    def end(self, booking_id: int, status: BookingStatus) -> None:
        """The booking moved to `status`; it keeps its number only if that state holds one."""
        self.status[booking_id] = status
        if not status.held:
            del self.active[booking_id]


class Run:
    """One example: its own hospital, schedules and patients, driven step by step."""

    def __init__(self, service: BookingService, rules: Rules) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.service = service
        self.operations = HospitalOperations(service)
        self.hospital = f"h-{suffix}"
        self.patients = [f"p{i}-{suffix}" for i in range(PATIENTS)]
        self.model = Model(rules)
        self.observed = Observed()
        self.bookings: list[Booking] = []  # every booking made, in order, as first answered
        self.settled = 0  # no-shows settled today so far
        self.schedule_ids: list[int] = []

    async def open(self) -> None:
        self.today = utc_today()
        await self.service.put_rules(self.hospital, self.model.rules)
        self.schedule_ids = await create(
            self.service,
            *(
                schedule_in(
                    hospital_id=self.hospital,
                    department_id=slot.department,
                    doctor_id=f"doc{i}",
                    visit_date=self.today + dt.timedelta(days=slot.day),
                    capacity=slot.capacity,
                    fee_cents=slot.fee_cents,
                )
                for i, slot in enumerate(SLOTS)
            ),
        )

    async def step(self, op: Operation) -> None:
        match op:
            case Book(patient, slot):
                await self.book(patient, slot)
            case Cancel(patient, which):
                await self.cancel(patient, which)
            case Blacklist(patient, expired):
                until = dt.datetime.now(dt.UTC) + dt.timedelta(days=-1 if expired else 1)
                await self.service.put_blacklist(self.hospital, self.patients[patient], until)
                if expired:  # it replaces any earlier entry, so it lifts the ban
                    self.model.blacklisted.discard(patient)
                else:
                    self.model.blacklisted.add(patient)
            case Unblacklist(patient):
                await self.service.delete_blacklist(self.hospital, self.patients[patient])
                self.model.blacklisted.discard(patient)
            case Lapse(which):
                await self.lapse(which)
            case Suspend(slot):
                await self.suspend(slot)
            case CheckIn(which):
                await self.check_in(which)
            case Settle():
                await self.settle()

    async def book(self, patient: int, slot: int) -> None:
        allowed = self.model.answers(patient, slot)
        free = self.model.free_numbers(slot)
        answer = await self.observed.book(
            self.service, self.patients[patient], self.schedule_ids[slot]
        )
        if isinstance(answer, Code):
            assert answer in allowed, f"refused with {answer}, the model allows {allowed}"
            return
        assert not allowed, f"booked number {answer.number}, the model expects one of {allowed}"
        assert answer.number in free, f"number {answer.number} is not free, free: {free}"
        expected = BookingStatus.PENDING_PAYMENT if SLOTS[slot].fee_cents else BookingStatus.BOOKED
        assert answer.status is expected, f"booked as {answer.status}, expected {expected}"
        self.model.active[answer.id] = (patient, slot, answer.number)
        self.model.status[answer.id] = answer.status
        self.bookings.append(answer)

    async def cancel(self, patient: int, which: int) -> None:
        if not self.bookings:
            return
        index = which % len(self.bookings)
        target = self.bookings[index]
        was_active = target.id in self.model.active
        answer = await self.observed.cancel(self.service, self.patients[patient], target.id)
        if target.patient_id != self.patients[patient]:
            assert answer is Code.BOOKING_NOT_FOUND, (
                f"cancelled another patient's booking: {answer}"
            )
            return
        status = self.model.status[target.id]
        if status not in CANCELLABLE and status is not BookingStatus.CANCELLED:
            assert answer is Code.INVALID_STATE, f"cancelling a booking {status}: {answer}"
            return
        assert isinstance(answer, Booking), f"cancelling own booking answered {answer}"
        assert answer.status is BookingStatus.CANCELLED
        assert answer.number == target.number
        if was_active:
            self.model.end(target.id, BookingStatus.CANCELLED)
            self.bookings[index] = answer
        elif target.status is BookingStatus.CANCELLED:
            # Cancelled by its patient before (a booking the hospital cancelled is the
            # hospital's, as the suspension left it).
            assert answer == target, "cancelling a cancelled booking changed it"

    def _target(self, which: int) -> Booking | None:
        return self.bookings[which % len(self.bookings)] if self.bookings else None

    async def lapse(self, which: int) -> None:
        target = self._target(which)
        if target is None:
            return
        pool = self.service.ledger.pool
        await pool.execute(
            "UPDATE bookings SET hold_expires_at = now() - interval '1 second'"
            " WHERE id = $1 AND status = 'pending_payment'",
            target.id,
        )
        expected = int(self.model.status[target.id] is BookingStatus.PENDING_PAYMENT)
        # Other examples' holds never lapse: this sweep can only find this one.
        assert await expiry.expire_holds(pool, self.service.strategy) == expected
        if expected:
            self.model.end(target.id, BookingStatus.EXPIRED)
            self.observed.released.add(target.id)

    async def suspend(self, slot: int) -> None:
        view = await self.operations.suspend(self.schedule_ids[slot], "ill", within=None)
        assert view.status is ScheduleStatus.SUSPENDED
        self.model.suspended.add(slot)
        for booking_id, (_, held_slot, _) in list(self.model.active.items()):
            if held_slot == slot and self.model.status[booking_id] in CANCELLABLE:
                self.model.end(booking_id, BookingStatus.CANCELLED)
                self.observed.released.add(booking_id)

    async def check_in(self, which: int) -> None:
        target = self._target(which)
        if target is None:
            return
        _, slot, _ = self.model.active.get(target.id, (None, None, None))
        # A staff member of its own each time: the wrong codes of one would be rate-limited.
        staff = f"staff-{uuid.uuid4().hex[:8]}"
        try:
            answer: Booking | Code = await self.operations.check_in(
                self.hospital, staff, target.verification_code
            )
        except SlotrushError as exc:
            answer = exc.code
        status = self.model.status[target.id]
        if status is BookingStatus.BOOKED and slot is not None and SLOTS[slot].day == TODAY:
            assert isinstance(answer, Booking) and answer.status is BookingStatus.ATTENDED
            self.model.end(target.id, BookingStatus.ATTENDED)
        else:
            assert answer is Code.BOOKING_NOT_FOUND, f"checking in a booking {status}: {answer}"

    async def settle(self) -> None:
        due = [
            booking_id
            for booking_id, (_, slot, _) in self.model.active.items()
            if SLOTS[slot].day == TODAY and self.model.status[booking_id] is BookingStatus.BOOKED
        ]
        settled = await self.operations.day_end(self.hospital, self.today)
        assert settled.no_shows == self.settled + len(due)
        self.settled += len(due)
        for booking_id in due:
            self.model.end(booking_id, BookingStatus.NO_SHOW)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=rules, ops=st.lists(operations, min_size=10, max_size=40))
async def test_every_answer_matches_the_model(
    service: BookingService, stores: Stores, rules: Rules, ops: list[Operation]
) -> None:
    # Shown with a failing example (its arguments are not printed under pytest-asyncio).
    note(f"rules={rules!r}")
    note(f"ops={ops!r}")
    before = await stores.ledger.audit()
    run = Run(service, rules)
    await run.open()
    for index, op in enumerate(ops):
        try:
            await run.step(op)
        except AssertionError as exc:
            raise AssertionError(f"step {index} {op}: {exc}") from exc

    # The ledger holds exactly what the model holds (unconfirmed_bookings compares the counts).
    assert await violations(stores.ledger, run.observed, since=before) == []
