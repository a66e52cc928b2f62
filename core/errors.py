"""The one exception type that crosses layers, carrying a stable code of API.md."""

from __future__ import annotations

from typing import Final

from core.domain import Code

# code -> (HTTP status, title). Titles are for humans; clients branch on the code.
PROBLEMS: Final[dict[Code, tuple[int, str]]] = {
    Code.INVALID_REQUEST: (400, "Invalid request"),
    Code.PAYLOAD_TOO_LARGE: (413, "Payload too large"),
    Code.UNAUTHORIZED: (401, "Unauthorized"),
    Code.FORBIDDEN: (403, "Forbidden"),
    Code.BLACKLISTED: (403, "Blacklisted"),
    Code.SCHEDULE_NOT_FOUND: (404, "Schedule not found"),
    Code.BOOKING_NOT_FOUND: (404, "Booking not found"),
    Code.HOSPITAL_NOT_FOUND: (404, "Hospital not found"),
    Code.DEPARTMENT_NOT_FOUND: (404, "Department not found"),
    Code.DOCTOR_NOT_FOUND: (404, "Doctor not found"),
    Code.SOLD_OUT: (409, "Sold out"),
    Code.ALREADY_BOOKED: (409, "Already booked"),
    Code.DAILY_LIMIT: (409, "Daily limit reached"),
    Code.DEPARTMENT_LIMIT: (409, "Department limit reached"),
    Code.NOT_OPEN: (409, "Not open yet"),
    Code.SCHEDULE_CLOSED: (409, "Schedule closed"),
    Code.IN_USE: (409, "In use"),
    Code.CANCEL_WINDOW_CLOSED: (409, "Cancel window closed"),
    Code.IDEMPOTENCY_CONFLICT: (422, "Idempotency conflict"),
    Code.RATE_LIMITED: (429, "Too many requests"),
    Code.BUSY: (503, "Busy, retry later"),
    Code.PROFILE_NOT_FOUND: (404, "Profile not found"),
    Code.INVALID_STATE: (409, "Invalid state for this action"),
    Code.WAITING_ROOM_NOT_FOUND: (404, "Waiting room not found"),
    Code.ROOM_TOKEN_INVALID: (403, "Invalid waiting room token"),
    Code.ADMISSION_REQUIRED: (403, "Admission through the waiting room required"),
    Code.CAPACITY_BELOW_HELD: (409, "Capacity below the numbers held"),
    Code.SCHEDULE_MOVED: (409, "Schedule moved"),
    Code.BAD_SIGNATURE: (400, "Bad signature"),
    Code.PAYMENT_PROVIDER_UNAVAILABLE: (503, "Payment provider unavailable, retry later"),
    Code.BLACKLIST_RULES_NOT_FOUND: (404, "Blacklist rules not found"),
    Code.NOTIFICATION_NOT_FOUND: (404, "Notification not found"),
}


class SlotrushError(Exception):
    """A request that cannot be served, with the stable code clients branch on."""

    def __init__(
        self, code: Code, detail: str | None = None, *, retry_after: int | None = None
    ) -> None:
        super().__init__(detail or code.value)
        self.code = code
        self.status, self.title = PROBLEMS[code]
        self.detail = detail
        self.retry_after = retry_after


class ServiceUnavailable(SlotrushError):
    """A dependency (Redis or PostgreSQL) could not be reached or gave up."""

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(Code.BUSY, detail, retry_after=retry_after)
