"""Hospitals, departments and doctors as resources an administrator manages (API.md 1.1).

Every function is keyed by the hospital, so a caller scoped to one hospital (a hospital's
own administrator) passes its id and can reach nothing else. A thing that does not exist or
was deleted is its `*_not_found`; the hospital's own 404 comes first.

Deleting is soft: the row stays, marked deleted, because schedules and bookings keep naming
it (their foreign keys, and the history records and analytics read). Deleting is refused
(`in_use`) while bookings hold numbers for its visits from the hospital's today on; once
deleted, its schedules are closed to booking (core.terms), in other processes within the
second their terms are kept; a booking already past that check when the deletion commits
can still land. PUT brings a deleted one back, and so does a new schedule naming it (v1
upserts what a schedule names).

The public browsing reads (the lists, and one hospital as the public sees it) run where
core.replica sends them; an administrator's reads and every write use the primary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from core.domain import Code, Rules
from core.errors import SlotrushError
from core.localtime import local_date
from core.paging import DEFAULT_LIMIT, Page, page_of
from core.queries import query as q
from core.replica import BrowsingReads
from core.terms import TermsCache

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True, slots=True)
class Hospital:
    id: str
    name: str
    # An IANA name of core.localtime.ZONE_NAMES: visit dates and times are local to it.
    timezone: str = "UTC"
    # Day-end settlement runs at this local time of the visit date.
    settle_at: dt.time = dt.time(23, 0)
    cancel_cutoff_minutes: int = 0
    payment_window_minutes: int = 15
    webhook_url: str | None = None


@dataclass(frozen=True, slots=True)
class Department:
    hospital_id: str
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Doctor:
    hospital_id: str
    id: str
    name: str
    # None only for a doctor nothing has placed in a department yet.
    department_id: str | None
    title: str = ""
    fee_cents: int = 0


class Hospitals:
    def __init__(
        self, pool: asyncpg.Pool, terms: TermsCache, clock: Clock, reads: BrowsingReads
    ) -> None:
        self._pool = pool
        self._terms = terms
        self._clock = clock
        self._reads = reads

    # --- hospitals ------------------------------------------------------------------------

    async def hospital(self, hospital_id: str) -> Hospital:
        return _hospital(await self._pool.fetchrow(q("get_hospital"), hospital_id))

    async def public_hospital(self, hospital_id: str) -> Hospital:
        """The hospital as browsing shows it (core.replica)."""
        return _hospital(await self._reads.fetchrow(q("get_hospital"), hospital_id))

    async def put_hospital(self, hospital: Hospital) -> Hospital:
        """Create or replace; the rules of the rules endpoint stay as they are."""
        await self._pool.execute(
            q("put_hospital"),
            hospital.id,
            hospital.name,
            hospital.timezone,
            hospital.settle_at,
            hospital.cancel_cutoff_minutes,
            hospital.payment_window_minutes,
            hospital.webhook_url,
        )
        self._terms.forget(hospital.id)
        return hospital

    async def delete_hospital(self, hospital_id: str) -> None:
        await self._delete(hospital_id, "delete_hospital", (hospital_id,), Code.HOSPITAL_NOT_FOUND)

    async def rules(self, hospital_id: str) -> Rules:
        row = await self._pool.fetchrow(q("hospital_rules"), hospital_id)
        if row is None:
            raise SlotrushError(Code.HOSPITAL_NOT_FOUND)
        return Rules(**dict(row))

    async def hospitals_page(
        self, *, after: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> Page[Hospital, str]:
        """Up to `limit` hospitals in id order after the id `after`."""
        rows = await self._reads.fetch(q("list_hospitals"), after, limit + 1)
        return page_of([Hospital(**dict(r)) for r in rows], limit, lambda h: h.id)

    # --- departments ----------------------------------------------------------------------

    async def departments_page(
        self, hospital_id: str, *, after: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> Page[Department, str]:
        """Up to `limit` of the hospital's departments in id order after the id `after`."""
        await self.public_hospital(hospital_id)
        rows = await self._reads.fetch(q("list_departments"), hospital_id, after, limit + 1)
        return page_of([Department(**dict(r)) for r in rows], limit, lambda d: d.id)

    async def department(self, hospital_id: str, department_id: str) -> Department:
        row = await self._pool.fetchrow(q("get_department"), hospital_id, department_id)
        if row is None:
            raise await self._not_found(hospital_id, Code.DEPARTMENT_NOT_FOUND)
        return Department(**dict(row))

    async def put_department(self, department: Department) -> Department:
        written = await self._pool.fetchval(
            q("put_department"), department.hospital_id, department.id, department.name
        )
        if written is None:
            raise SlotrushError(Code.HOSPITAL_NOT_FOUND)
        self._terms.forget(department.hospital_id)
        return department

    async def delete_department(self, hospital_id: str, department_id: str) -> None:
        await self._delete(
            hospital_id,
            "delete_department",
            (hospital_id, department_id),
            Code.DEPARTMENT_NOT_FOUND,
            department_id=department_id,
        )

    # --- doctors --------------------------------------------------------------------------

    async def doctors_page(
        self,
        hospital_id: str,
        *,
        department_id: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[Doctor, str]:
        """Up to `limit` of the hospital's doctors (of one department, if given) in id order
        after the id `after`."""
        await self.public_hospital(hospital_id)
        rows = await self._reads.fetch(
            q("list_doctors"), hospital_id, department_id, after, limit + 1
        )
        return page_of([Doctor(**dict(r)) for r in rows], limit, lambda d: d.id)

    async def doctor(self, hospital_id: str, doctor_id: str) -> Doctor:
        row = await self._pool.fetchrow(q("get_doctor"), hospital_id, doctor_id)
        if row is None:
            raise await self._not_found(hospital_id, Code.DOCTOR_NOT_FOUND)
        return Doctor(**dict(row))

    async def put_doctor(self, doctor: Doctor) -> Doctor:
        """Create or replace; the doctor's department must exist (`department_not_found`)."""
        written = await self._pool.fetchval(
            q("put_doctor"),
            doctor.hospital_id,
            doctor.id,
            doctor.name,
            doctor.title,
            doctor.department_id,
            doctor.fee_cents,
        )
        if written is None:
            raise await self._not_found(doctor.hospital_id, Code.DEPARTMENT_NOT_FOUND)
        self._terms.forget(doctor.hospital_id)
        return doctor

    async def delete_doctor(self, hospital_id: str, doctor_id: str) -> None:
        await self._delete(
            hospital_id,
            "delete_doctor",
            (hospital_id, doctor_id),
            Code.DOCTOR_NOT_FOUND,
            doctor_id=doctor_id,
        )

    # --- shared ---------------------------------------------------------------------------

    async def _not_found(self, hospital_id: str, code: Code) -> SlotrushError:
        """`code`, unless the hospital itself does not exist."""
        if await self._pool.fetchrow(q("get_hospital"), hospital_id) is None:
            code = Code.HOSPITAL_NOT_FOUND
        return SlotrushError(code)

    async def _delete(
        self,
        hospital_id: str,
        statement: str,
        args: tuple[str, ...],
        not_found: Code,
        *,
        department_id: str | None = None,
        doctor_id: str | None = None,
    ) -> None:
        """Mark deleted by `statement`, unless bookings hold numbers of it from today on.

        The hospital's row stays locked until the end, so its time zone (and so its today)
        cannot change in between.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            timezone = await conn.fetchval(q("lock_hospital"), hospital_id)
            if timezone is None:
                raise SlotrushError(Code.HOSPITAL_NOT_FOUND)
            if await conn.fetchval(q(statement), *args) is None:
                raise SlotrushError(not_found)
            today = local_date(self._clock(), ZoneInfo(timezone))
            held = await conn.fetchval(
                q("held_bookings_from"), hospital_id, today, department_id, doctor_id
            )
            if held:
                # Raising rolls the deletion back.
                raise SlotrushError(
                    Code.IN_USE, "bookings hold numbers of it for visits from today on"
                )
        self._terms.forget(hospital_id)


def _hospital(row: asyncpg.Record | None) -> Hospital:
    if row is None:
        raise SlotrushError(Code.HOSPITAL_NOT_FOUND)
    return Hospital(**dict(row))
