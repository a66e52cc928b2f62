"""The waiting room's signed tokens: a position token (a patient's place in a room) and an
admission token (the right to book the room's schedule until it expires).

Both are HS256 JWTs under a key of their own, derived from the server's secret, so that no
room token is ever a valid bearer token and no bearer token a room token; `typ` tells the two
kinds apart. Checking an admission token costs no store round trip: the booking path stays
as cheap with a room as without one, and every server process (or instance) that shares the
secret accepts the tokens of every other.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson

from core.domain import Code
from core.errors import SlotrushError
from core.hs256 import HS256

POSITION: Final = "slotrush-room-position"
ADMISSION: Final = "slotrush-room-admission"
_KEY_LABEL: Final = b"slotrush waiting room tokens v1"


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a verified room token says."""

    kind: str
    schedule_id: int
    patient_id: str
    expires_at: float
    # The patient's arrival number (position tokens only; 0 in an admission token).
    arrival: int = 0


class RoomTickets:
    def __init__(self, secret: str) -> None:
        # Hex of an HMAC: 64 characters, never the secret itself.
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).hexdigest()
        self._hs256 = HS256(self._key)

    def sign(self, ticket: Ticket) -> str:
        claims: dict[str, Any] = {
            "typ": ticket.kind,
            "sch": str(ticket.schedule_id),
            "sub": ticket.patient_id,
            "exp": int(ticket.expires_at),
        }
        if ticket.arrival:
            claims["arr"] = ticket.arrival
        return self._hs256.sign(claims)

    def check(self, token: str, kind: str, schedule_id: int, patient_id: str) -> Ticket:
        """The ticket if `token` is a valid, unexpired `kind` token of this patient for this
        schedule; SlotrushError with the kind's code otherwise."""
        code = Code.ADMISSION_REQUIRED if kind == ADMISSION else Code.ROOM_TOKEN_INVALID
        try:
            claims = orjson.loads(self._hs256(token))
            ticket = Ticket(
                kind=claims["typ"],
                schedule_id=int(claims["sch"]),
                patient_id=claims["sub"],
                expires_at=float(claims["exp"]),
                arrival=int(claims.get("arr", 0)),
            )
        except (SlotrushError, ValueError, KeyError, TypeError):
            raise SlotrushError(code, f"not a valid {kind} token") from None
        if (ticket.kind, ticket.schedule_id, ticket.patient_id) != (kind, schedule_id, patient_id):
            raise SlotrushError(code, f"this {kind} token is for another patient or schedule")
        if ticket.expires_at <= time.time():
            raise SlotrushError(code, f"this {kind} token has expired")
        return ticket
