"""Who is asking: the bearer token of a request, checked before anything else (API.md).

Each handler names what its route's Access needs (`reader`, `patient`, `staff`, `platform`),
and these raise the stable code of API.md when the request does not carry it. A hospital
administrator is bound to one hospital (invariant 11): `staff` and `confine` refuse it any
other hospital a request names, and the principal they return carries the hospital every
query of its must be keyed by (`hospital_id`; None for the platform, which sees all).
"""

from __future__ import annotations

from aiohttp import hdrs, web

from core.domain import Code
from core.errors import SlotrushError
from core.tokens import Principal
from server import validation as parse
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


async def reader(request: web.Request) -> Principal:
    """Any valid token: schedules are not any one patient's. A hospital administrator's
    principal still confines what it reads to its hospital."""
    who = principal(request)
    await _limit(request, who.subject)
    return who


async def patient(request: web.Request) -> str:
    """The patient id of a token that acts for one."""
    patient_id = principal(request).patient_id
    if patient_id is None:
        raise SlotrushError(Code.FORBIDDEN, "this administrator's token names no patient (sub)")
    await _limit(request, patient_id)
    return patient_id


def staff(request: web.Request, *hospital_ids: str) -> Principal:
    """The platform administrator, or the administrator of every hospital named (a route
    that names none is then confined to the administrator's own); 403 for anyone else."""
    who = principal(request)
    if who.role is None:
        raise SlotrushError(Code.FORBIDDEN, "this endpoint needs an administrator's token")
    confine(who, *hospital_ids)
    return who


def staff_hospital(request: web.Request) -> str:
    """The `{hospital_id}` of the path, once the caller is known to administer it (403
    before 400: a hospital administrator learns nothing of another hospital's ids)."""
    raw = request.match_info["hospital_id"]
    staff(request, raw)
    return parse.entity_id(raw, "hospital_id")


def confine(who: Principal, *hospital_ids: str) -> None:
    """403 unless `who` may see every one of `hospital_ids`: a hospital administrator only
    its own, everyone else all of them."""
    bound = who.hospital_id
    if bound is not None and any(hospital_id != bound for hospital_id in hospital_ids):
        raise SlotrushError(Code.FORBIDDEN, "this token is bound to another hospital")


def platform(request: web.Request) -> Principal:
    """The platform administrator only (a hospital administrator's token is refused)."""
    who = principal(request)
    if not who.admin:
        raise SlotrushError(Code.FORBIDDEN, "this endpoint needs the platform administrator")
    return who
