"""Patients: the profile a patient keeps, and the tags a hospital gives its patients."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

from msgspec import UNSET, Meta, UnsetType

from core.profiles import Sex
from server.shapes import EntityId, Shape

MAX_TAGS: Final = 50

# A real date from 1900-01-01 on; server.validation refuses one after today (a JSON Schema
# cannot say "today").
BirthDate = Annotated[
    str,
    Meta(
        pattern=r"^(19[0-9]{2}|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}\Z",
        extra_json_schema={"format": "date"},
        description="From 1900-01-01 to today (in the patient's time zone); a later one is 400.",
    ),
]
# Any text of 1..64 characters but control characters: staff write tags in their language.
Tag = Annotated[str, Meta(pattern=r"^[^\x00-\x1f\x7f]{1,64}\Z")]


class ProfileIn(Shape):
    birth_date: BirthDate
    # Absent means not stated.
    sex: Sex | UnsetType = UNSET


class Profile(Shape):
    """The patient's own profile; its birth date gives the age bands of the analytics."""

    patient_id: EntityId
    birth_date: dt.date
    sex: Annotated[Sex | None, Meta(description="null: not stated.")]
    updated_at: dt.datetime


class TagsIn(Shape):
    """The whole set of the hospital's tags of a patient; duplicates collapse."""

    tags: Annotated[list[Tag], Meta(max_length=MAX_TAGS)]


class TagsQuery(Shape):
    """Whose tags: the platform administrator names the hospital."""

    hospital_id: EntityId


class PatientTags(Shape):
    hospital_id: EntityId
    patient_id: EntityId
    tags: Annotated[list[Tag], Meta(description="Sorted by code point.")]
