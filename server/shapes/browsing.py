"""Public browsing for front ends (API.md 1.1, Management): hospitals, departments and
doctors as anyone may read them, without a token, one page at a time."""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from server.shapes import CutoffMinutes, EntityId, NextCursor, PageQuery, Shape
from server.shapes.hospitals import Department, Doctor, Name, PaymentWindowMinutes, TimeZone


class PublicHospital(Shape):
    """What a patient may know of a hospital (its settlement time and webhook are its own)."""

    id: EntityId
    name: Name
    timezone: TimeZone
    cancel_cutoff_minutes: CutoffMinutes
    payment_window_minutes: PaymentWindowMinutes


class HospitalPage(Shape):
    """A page of hospitals in id order."""

    hospitals: list[PublicHospital]
    next_cursor: NextCursor


class DepartmentPage(Shape):
    """A page of a hospital's departments in id order."""

    departments: list[Department]
    next_cursor: NextCursor


class DoctorPage(Shape):
    """A page of a hospital's doctors in id order."""

    doctors: list[Doctor]
    next_cursor: NextCursor


class DoctorQuery(PageQuery):
    """The query of a hospital's doctors: one department's, if `department_id` is given."""

    department_id: EntityId | UnsetType = UNSET
