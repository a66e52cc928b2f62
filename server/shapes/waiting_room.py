"""Waiting rooms (slotrush extension): a room's settings and counts, and a patient's place."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Literal

from msgspec import Meta

from server.shapes import Serial, Shape

MAX_RATE: Final = 100_000.0

AdmitPerSecond = Annotated[
    float,
    Meta(gt=0, le=MAX_RATE, description="Patients admitted per second, from the opening on."),
]
ActiveMinutes = Annotated[
    int,
    Meta(
        ge=1,
        le=1440,
        description="How long the room stays open after the opening (or after now, if later).",
    ),
]
AdmissionSeconds = Annotated[
    int, Meta(ge=10, le=3600, description="How long an admission token lets its patient book.")
]
AbandonSeconds = Annotated[
    int,
    Meta(
        ge=5,
        le=3600,
        description="A waiting patient who has not asked for this long loses the place.",
    ),
]


class WaitingRoomIn(Shape):
    admit_per_second: AdmitPerSecond
    active_minutes: ActiveMinutes = 60
    admission_seconds: AdmissionSeconds = 120
    abandon_seconds: AbandonSeconds = 60


class WaitingRoom(Shape):
    """A schedule's waiting room: how it admits, and what it has done so far."""

    schedule_id: Serial
    opens_at: Annotated[dt.datetime, Meta(description="The schedule's opening.")]
    closes_at: Annotated[dt.datetime, Meta(description="From then on, booking needs no room.")]
    admit_per_second: float
    admission_seconds: int
    abandon_seconds: int
    waiting: Annotated[int, Meta(ge=0, description="Patients in the queue now.")]
    arrivals: Annotated[int, Meta(ge=0, description="Places given out, rejoins included.")]
    admitted: Annotated[int, Meta(ge=0)]
    abandoned: Annotated[int, Meta(ge=0, description="Places lost by not asking in time.")]


class RoomPlace(Shape):
    """Where the patient stands. `waiting`: ask again before `abandon_seconds` pass, with
    the position token; `admitted`: book with the admission token until it expires;
    `absent`: the place expired (or was never taken), join again."""

    schedule_id: Serial
    status: Literal["waiting", "admitted", "absent"]
    position: Annotated[int | None, Meta(description="1: the next to be admitted.")]
    arrival: Annotated[int | None, Meta(description="The patient's arrival number.")]
    waiting: Annotated[int, Meta(ge=0, description="Patients in the queue now.")]
    opens_at: dt.datetime
    closes_at: dt.datetime
    estimated_wait_seconds: Annotated[float, Meta(ge=0)]
    abandon_seconds: int
    position_token: Annotated[
        str | None, Meta(description="Send as the Waiting-Room-Token header to ask again.")
    ]
    admission_token: Annotated[
        str | None,
        Meta(description="Send as the Waiting-Room-Admission header of the booking request."),
    ]
    admission_expires_at: dt.datetime | None
