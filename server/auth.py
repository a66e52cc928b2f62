"""Who is asking: the bearer token of a request, checked before anything else (API.md).

Each handler names what it needs (`reader`, `patient`, `admin`), and these raise the stable
code of API.md when the request does not carry it.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from core.domain import Code
from core.errors import SlotrushError
from core.tokens import Principal
from server.appkeys import RATE_LIMITER, VERIFIER


def principal(request: web.Request) -> Principal:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        raise SlotrushError(Code.UNAUTHORIZED, "an Authorization: Bearer token is required")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SlotrushError(Code.UNAUTHORIZED, "the Authorization header must be Bearer <JWT>")
    return request.app[VERIFIER].verify(token)


async def _limit(request: web.Request, patient_id: str | None) -> None:
    limiter = request.app[RATE_LIMITER]
    if not limiter.enabled:
        return
    retry_after = await limiter.retry_after(patient_id=patient_id, address=request.remote)
    if retry_after is not None:
        raise SlotrushError(Code.RATE_LIMITED, retry_after=retry_after)


async def reader(request: web.Request) -> None:
    """Any valid token: schedules are not any one patient's."""
    await _limit(request, principal(request).subject)


async def patient(request: web.Request) -> str:
    """The patient id of a token that acts for one."""
    patient_id = principal(request).patient_id
    if patient_id is None:
        raise SlotrushError(Code.FORBIDDEN, "this administrator's token names no patient (sub)")
    await _limit(request, patient_id)
    return patient_id


def admin(request: web.Request) -> None:
    """The platform administrator only (a hospital administrator's token is refused)."""
    if not principal(request).admin:
        raise SlotrushError(Code.FORBIDDEN, "this endpoint needs an admin token")
