"""The staff console's live stream: what it asks for."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from server.shapes import Shape

MAX_SECONDS: Final = 3600


class LiveQuery(Shape):
    visit_from: Annotated[
        dt.date, Meta(description="Sessions with visits on or after this date.")
    ] = msgspec.field(name="from")
    visit_to: Annotated[
        dt.date, Meta(description="Sessions with visits on or before this date.")
    ] = msgspec.field(name="to")
    seconds: Annotated[
        int,
        Meta(
            ge=1,
            le=MAX_SECONDS,
            description=(
                "How long to keep the stream open at most; it also ends before the request "
                "deadline of admin routes (60 s by default). Reconnect when it ends."
            ),
        ),
    ] = MAX_SECONDS
