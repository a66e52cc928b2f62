"""A season drawn from a seed: who works when, who books what, how far ahead, and how it ends.

Every hospital has the same departments; each doctor holds a few weekly sessions on fixed
weekdays, filled by weekday demand. Each booking's patient is drawn from the ages the
department sees, its lead time from LEAD_MIX, and its outcome from the rates of
bench.season.rates by the patient's age band at the visit and the lead time. Nothing here
touches a store: the same plan and seed always give the same season.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bench.season import rates
from core.analytics import AGE_BANDS, LEAD_TIME_BANDS
from core.domain import BookingStatus, Period, ScheduleIn
from core.localtime import UTC, visit_starts_at
from core.profiles import Sex

ADULTS: Final = AGE_BANDS.labels[1:]
EVERYONE: Final = AGE_BANDS.labels
# Monday is 0; no sessions on Sundays. The share of a session's numbers that get booked.
WEEKDAY_FILL: Final = {0: 0.98, 1: 0.93, 2: 0.9, 3: 0.88, 4: 0.85, 5: 0.75}
OLDEST: Final = 95
CAPACITIES: Final = (20, 40)
LONGEST_LEAD_DAYS: Final = 59
# Schedules open this long before the visit, so every lead time in the mix is possible.
OPENS_DAYS_AHEAD: Final = LONGEST_LEAD_DAYS + 1
_CODE_ALPHABET: Final = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class Department:
    name: str
    # Whom it sees: age bands at the season's start, and a sex if only one.
    bands: tuple[str, ...]
    sex: Sex | None = None


DEPARTMENTS: Final = (
    Department("internal-medicine", ADULTS),
    Department("surgery", ADULTS),
    Department("pediatrics", EVERYONE[:1]),
    Department("gynecology", ADULTS[:3], Sex.FEMALE),
    Department("ophthalmology", EVERYONE),
    Department("dermatology", EVERYONE),
    Department("orthopedics", EVERYONE),
    Department("cardiology", ADULTS[1:]),
)


@dataclass(frozen=True)
class SeasonPlan:
    first_day: dt.date
    weeks: int = 13
    hospitals: int = 3
    doctors_per_department: int = 3
    sessions_per_week: int = 3
    patients: int = 30_000
    # Patients who never filled in a profile: the analytics' "unknown" age band, so few that
    # a hospital's report shows it as a small group.
    without_profile: float = 0.001
    seed: int = 2026
    # Prefixes every id, so several seasons can share a ledger.
    region: str = "sim"

    @property
    def hospital_ids(self) -> list[str]:
        return [f"{self.region}-h{k + 1}" for k in range(self.hospitals)]


@dataclass(frozen=True, slots=True)
class Patient:
    id: str
    birth_date: dt.date
    sex: Sex
    has_profile: bool


@dataclass(frozen=True, slots=True)
class SimulatedBooking:
    # Index into Season.schedules.
    schedule: int
    patient: Patient
    number: int
    # The age band at the visit (whether or not the profile tells) and the lead-time band:
    # what its outcome was drawn by.
    age_band: str
    lead_band: str
    lead_days: int
    status: BookingStatus
    created_at: dt.datetime
    cancelled_at: dt.datetime | None
    request_id: uuid.UUID
    verification_code: str


@dataclass(frozen=True)
class Season:
    plan: SeasonPlan
    schedules: list[ScheduleIn]
    patients: list[Patient]
    bookings: list[SimulatedBooking]


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """Completed years on `day`."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


class _Draw:
    """The season's one source of randomness."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def weighted(self, weights: Mapping[str, float]) -> str:
        return self.rng.choices(list(weights), list(weights.values()))[0]

    def within(self, band: str, bands: Sequence[str], bounds: Sequence[int], top: int) -> int:
        index = list(bands).index(band)
        high = bounds[index + 1] - 1 if index + 1 < len(bounds) else top
        return self.rng.randint(bounds[index], high)

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def code(self) -> str:
        return "".join(self.rng.choice(_CODE_ALPHABET) for _ in range(8))


def generate(plan: SeasonPlan) -> Season:
    draw = _Draw(plan.seed)
    patients = _population(plan, draw)
    pools: dict[tuple[str, Sex], list[Patient]] = defaultdict(list)
    for p in patients:
        pools[(AGE_BANDS.of(age_on(p.birth_date, plan.first_day)), p.sex)].append(p)
    # A session draws distinct patients: every pool a department draws from must be larger.
    if min(len(pools[key]) for key in _pool_keys()) <= CAPACITIES[1]:
        raise ValueError(f"{plan.patients} patients are too few for sessions of this size")
    schedules: list[ScheduleIn] = []
    bookings: list[SimulatedBooking] = []
    for hospital in plan.hospital_ids:
        for department in DEPARTMENTS:
            for doctor in range(plan.doctors_per_department):
                for item in _sessions(plan, draw, hospital, department, f"dr{doctor + 1}"):
                    schedules.append(item)
                    bookings += _bookings(draw, pools, department, item, len(schedules) - 1)
    return Season(plan, schedules, patients, bookings)


def _pool_keys() -> set[tuple[str, Sex]]:
    return {(band, sex) for d in DEPARTMENTS for band in d.bands for sex in _sexes(d)}


def _sexes(department: Department) -> tuple[Sex, ...]:
    return (department.sex,) if department.sex else (Sex.FEMALE, Sex.MALE)


def _population(plan: SeasonPlan, draw: _Draw) -> list[Patient]:
    patients = []
    for i in range(plan.patients):
        band = draw.weighted(rates.AGE_MIX)
        age = draw.within(band, AGE_BANDS.labels, AGE_BANDS.lower_bounds, OLDEST)
        # Somewhere in the year before the birthday that makes `age` at the season's start.
        birthday = plan.first_day - dt.timedelta(days=draw.rng.randrange(1, 366))
        birth_date = birthday.replace(year=birthday.year - age, day=min(birthday.day, 28))
        patients.append(
            Patient(
                id=f"{plan.region}-p{i + 1:06d}",
                birth_date=birth_date,
                sex=draw.rng.choice((Sex.FEMALE, Sex.MALE)),
                has_profile=draw.rng.random() >= plan.without_profile,
            )
        )
    return patients


def _sessions(
    plan: SeasonPlan, draw: _Draw, hospital: str, department: Department, doctor: str
) -> list[ScheduleIn]:
    weekdays = set(draw.rng.sample(sorted(WEEKDAY_FILL), plan.sessions_per_week))
    period = draw.rng.choice((Period.AM, Period.PM))
    capacity = draw.rng.randint(*CAPACITIES)
    days = (plan.first_day + dt.timedelta(days=d) for d in range(plan.weeks * 7))
    return [
        ScheduleIn(
            hospital_id=hospital,
            department_id=department.name,
            doctor_id=f"{department.name}-{doctor}",
            visit_date=day,
            period=period,
            capacity=capacity,
            opens_at=visit_starts_at(day, period, UTC) - dt.timedelta(days=OPENS_DAYS_AHEAD),
        )
        for day in days
        if day.weekday() in weekdays
    ]


def _bookings(
    draw: _Draw,
    pools: Mapping[tuple[str, Sex], list[Patient]],
    department: Department,
    schedule: ScheduleIn,
    index: int,
) -> list[SimulatedBooking]:
    fill = WEEKDAY_FILL[schedule.visit_date.weekday()] * draw.rng.uniform(0.85, 1.0)
    sexes = _sexes(department)
    band_mix = {band: rates.AGE_MIX[band] for band in department.bands}
    seen: set[str] = set()
    made = []
    for number in range(1, round(schedule.capacity * fill) + 1):
        # One booking per patient per session; a clash is drawn again.
        while True:
            pool = pools[(draw.weighted(band_mix), draw.rng.choice(sexes))]
            patient = draw.rng.choice(pool)
            if patient.id not in seen:
                seen.add(patient.id)
                break
        made.append(_booking(draw, schedule, index, patient, number))
    return made


def _booking(
    draw: _Draw, schedule: ScheduleIn, index: int, patient: Patient, number: int
) -> SimulatedBooking:
    starts = visit_starts_at(schedule.visit_date, schedule.period, UTC)
    lead_band = draw.weighted(rates.LEAD_MIX)
    lead_days = draw.within(
        lead_band, LEAD_TIME_BANDS.labels, LEAD_TIME_BANDS.lower_bounds, LONGEST_LEAD_DAYS
    )
    day = dt.datetime.combine(schedule.visit_date, dt.time(), dt.UTC) - dt.timedelta(lead_days)
    # Within the booking's UTC day, and before the session on the day itself.
    latest = min(day + dt.timedelta(hours=23), starts - dt.timedelta(hours=1))
    created_at = day + (latest - day) * draw.rng.random()
    age_band = AGE_BANDS.of(age_on(patient.birth_date, schedule.visit_date))
    cancelled_at = None
    if draw.rng.random() < rates.cancel_chance(age_band, lead_band):
        status = BookingStatus.CANCELLED
        cancelled_at = created_at + (starts - created_at) * draw.rng.random()
    elif draw.rng.random() < rates.no_show_chance(age_band, lead_band):
        status = BookingStatus.NO_SHOW
    else:
        status = BookingStatus.ATTENDED
    return SimulatedBooking(
        schedule=index,
        patient=patient,
        number=number,
        age_band=age_band,
        lead_band=lead_band,
        lead_days=lead_days,
        status=status,
        created_at=created_at,
        cancelled_at=cancelled_at,
        request_id=draw.uuid(),
        verification_code=draw.code(),
    )
