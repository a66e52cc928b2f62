"""What is known of a patient besides their bookings: the profile the patient keeps (birth
date, sex), and the tags each hospital gives its patients for its own grouping.

A profile is the patient's own on the regional platform; tags are keyed by hospital, and a
hospital reads and writes only its own (API.md invariant 11).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import asyncpg

from core.domain import Code
from core.errors import SlotrushError
from core.queries import fetch_one
from core.queries import query as q

EARLIEST_BIRTH_DATE: Final = dt.date(1900, 1, 1)
# The earliest time zone (Kiribati) is UTC+14: no patient's today is later than this.
_EARLIEST_ZONE: Final = dt.timedelta(hours=14)


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Profile:
    patient_id: str
    birth_date: dt.date
    # None: not stated.
    sex: Sex | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class PatientTags:
    hospital_id: str
    patient_id: str
    tags: tuple[str, ...]


def latest_birth_date(now: dt.datetime) -> dt.date:
    """Today somewhere on Earth at `now`: a patient born today may be registered at once."""
    return (now.astimezone(dt.UTC) + _EARLIEST_ZONE).date()


def _profile(row: asyncpg.Record) -> Profile:
    sex = row["sex"]
    return Profile(
        patient_id=row["patient_id"],
        birth_date=row["birth_date"],
        sex=Sex(sex) if sex is not None else None,
        updated_at=row["updated_at"],
    )


async def put_profile(
    pool: asyncpg.Pool, patient_id: str, birth_date: dt.date, sex: Sex | None
) -> Profile:
    """Replace the patient's profile (a sex left out is not stated)."""
    row = await fetch_one(
        pool, "put_profile", patient_id, birth_date, sex.value if sex is not None else None
    )
    return _profile(row)


async def get_profile(pool: asyncpg.Pool, patient_id: str) -> Profile:
    row = await pool.fetchrow(q("get_profile"), patient_id)
    if row is None:
        raise SlotrushError(Code.PROFILE_NOT_FOUND)
    return _profile(row)


async def put_tags(
    pool: asyncpg.Pool, hospital_id: str, patient_id: str, tags: Iterable[str]
) -> PatientTags:
    """Replace the hospital's tags of a patient (duplicates collapse); answered sorted."""
    unique = tuple(sorted(set(tags)))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(q("upsert_hospitals"), [hospital_id])
        await conn.execute(q("delete_patient_tags"), hospital_id, patient_id)
        await conn.execute(q("insert_patient_tags"), hospital_id, patient_id, list(unique))
    return PatientTags(hospital_id, patient_id, unique)


async def get_tags(pool: asyncpg.Pool, hospital_id: str, patient_id: str) -> PatientTags:
    """The hospital's tags of a patient, sorted; none is an empty set, not an error."""
    rows = await pool.fetch(q("get_patient_tags"), hospital_id, patient_id)
    return PatientTags(hospital_id, patient_id, tuple(r["tag"] for r in rows))
