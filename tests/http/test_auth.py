"""Authentication before anything else: every /v1 route refuses what is not a valid token of
the right kind, and answers 401 or 403 the same way whatever else is wrong with the request."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from core.token_keys import load_signing_key
from core.tokens import issue_token
from server.endpoints import ROUTES
from server.route import Access
from tests.http.conftest import (
    SECRET,
    Client,
    ServeFn,
    admin_token,
    bearer,
    patient_token,
    unique,
)
from tests.keys import ed25519_key, public_jwk, rsa_key, write_jwks, write_private

# Sample path parameters; they name nothing, which must not matter before authentication (and
# a schedule that never existed is never remembered as sold out).
PARAMETERS = {
    "schedule_id": "999999999999",
    "booking_id": "1",
    "hospital_id": "h1",
    "patient_id": "p1",
    "department_id": "d1",
    "doctor_id": "dr1",
    "notification_id": "1",
}
V1 = [route for route in ROUTES if route.access is not Access.PUBLIC]
ADMIN = [route for route in V1 if route.access in (Access.STAFF, Access.PLATFORM)]
# Routes that act for one patient, so the token must name one.
PATIENT_ONLY = [r for r in V1 if r.access is Access.PATIENT]


def route_id(route: Any) -> str:
    return f"{route.method} {route.path}"


def path_of(route: Any) -> str:
    return route.path.format(**PARAMETERS)


def signed(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def in_an_hour() -> int:
    return int(time.time()) + 3600


BAD_TOKENS = {
    "garbage": "not-a-jwt",
    "three dots": "a.b.c",
    "alg none": jwt.encode({"sub": "p1", "exp": in_an_hour()}, None, algorithm="none"),
    "wrong key": signed({"sub": "p1", "exp": in_an_hour()}, key="another-secret-" + "x" * 40),
    "HS512": signed({"sub": "p1", "exp": in_an_hour()}, key=SECRET + SECRET, algorithm="HS512"),
    "expired": signed({"sub": "p1", "exp": int(time.time()) - 10}),
    "no exp": signed({"sub": "p1"}),
    "exp not a number": signed({"sub": "p1", "exp": "tomorrow"}),
    "no sub": signed({"exp": in_an_hour()}),
    "sub not a string": signed({"sub": 42, "exp": in_an_hour()}),
    "sub not an id": signed({"sub": "p 1", "exp": in_an_hour()}),
    "admin role with a bad sub": signed({"sub": "", "role": "admin", "exp": in_an_hour()}),
    "not yet valid": signed({"sub": "p1", "exp": in_an_hour(), "nbf": in_an_hour() - 60}),
    "an audience we do not know": signed({"sub": "p1", "exp": in_an_hour(), "aud": "other"}),
    "hospital_admin without its hospital": signed({"role": "hospital_admin", "exp": in_an_hour()}),
    "hospital_admin with a bad hospital id": signed(
        {"role": "hospital_admin", "hospital_id": "h 1", "exp": in_an_hour()}
    ),
}
BAD_HEADERS = {
    "none": {},
    "empty": {"Authorization": ""},
    "basic": {"Authorization": "Basic cDE6cGFzcw=="},
    "bearer without token": {"Authorization": "Bearer "},
    "token without scheme": {"Authorization": patient_token("p1")},
    **{f"bearer {name}": bearer(token) for name, token in BAD_TOKENS.items()},
}


@pytest.mark.parametrize("route", V1, ids=route_id)
async def test_every_v1_route_refuses_a_missing_or_bad_token(api: Client, route: Any) -> None:
    for name, headers in BAD_HEADERS.items():
        answer = await api.call(route.method, path_of(route), headers=headers, json={"x": 1})
        problem = answer.problem(401, "unauthorized")
        assert answer.headers["WWW-Authenticate"] == "Bearer", name
        assert "detail" in problem


@pytest.mark.parametrize("route", ADMIN, ids=route_id)
async def test_admin_routes_refuse_a_patient_token(api: Client, route: Any) -> None:
    answer = await api.call(route.method, path_of(route), token=patient_token("p1"), json={})
    answer.problem(403, "forbidden")


@pytest.mark.parametrize("route", PATIENT_ONLY, ids=route_id)
async def test_patient_routes_refuse_an_administrator_token(api: Client, route: Any) -> None:
    # A hospital administrator's sub names staff, never a patient.
    for token in (admin_token(), issue_token(SECRET, subject="p1", hospital_id="h1")):
        answer = await api.call(route.method, path_of(route), token=token, json={})
        answer.problem(403, "forbidden")


async def test_any_valid_token_reads_schedules(api: Client) -> None:
    schedule = await api.create_schedule()
    for token in (admin_token(), patient_token(unique("p"))):
        answer = await api.call("GET", f"/v1/schedules/{schedule['id']}", token=token)
        assert answer.status == 200


async def test_an_admin_token_with_a_subject_acts_for_that_patient(api: Client) -> None:
    schedule = await api.create_schedule()
    patient = unique("p")
    token = issue_token(SECRET, subject=patient, admin=True)
    answer = await api.call("POST", f"/v1/schedules/{schedule['id']}/bookings", token=token)
    assert answer.status == 201 and answer.json["booking"]["patient_id"] == patient


async def test_a_token_stops_working_when_it_expires(api: Client) -> None:
    token = issue_token(SECRET, subject=unique("p"), ttl=2)
    assert (await api.call("GET", "/v1/me/bookings", token=token)).status == 200
    # The server remembers verified tokens; it must still honour their expiry.
    await asyncio.sleep(2.5)
    (await api.call("GET", "/v1/me/bookings", token=token)).problem(401, "unauthorized")


async def test_the_scheme_is_case_insensitive(api: Client) -> None:
    headers = {"Authorization": f"bEaReR {patient_token(unique('p'))}"}
    assert (await api.call("GET", "/v1/me/bookings", headers=headers)).status == 200


async def test_operations_need_no_token(api: Client) -> None:
    for path in ("/healthz", "/metrics", "/openapi.json", "/ceiling"):
        assert (await api.call("GET", path)).status == 200, path


async def test_a_server_with_a_jwks_takes_only_its_keys_tokens(
    serve: ServeFn, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    edwards, rivest = ed25519_key(), rsa_key()
    jwks = write_jwks([public_jwk(edwards, "ed"), public_jwk(rivest, "rsa")], tmp_path / "k.json")
    env = {
        "SLOTRUSH_SECRET": "",
        "SLOTRUSH_JWT_JWKS": jwks,
        "SLOTRUSH_JWT_ISSUER": "https://idp",
        "SLOTRUSH_JWT_AUDIENCE": "slotrush",
    }
    api = Client(session, (await serve("--strategy", "pg-pessimistic", env=env)).url)
    ed = load_signing_key(write_private(edwards, tmp_path / "ed.pem"), "ed")
    rsa = load_signing_key(write_private(rivest, tmp_path / "rsa.pem"), "rsa")
    ours = {"issuer": "https://idp", "audience": "slotrush"}
    for key in (ed, rsa):
        token = issue_token(key, subject=unique("p"), **ours)
        assert (await api.call("GET", "/v1/me/bookings", token=token)).status == 200
    admin = issue_token(rsa, admin=True, **ours)
    assert (await api.call("GET", "/v1/admin/audit", token=admin)).status == 200
    staff = issue_token(ed, hospital_id="h1", **ours)
    assert (await api.call("GET", "/v1/admin/audit", token=staff)).status == 200
    other = "/v1/admin/hospitals/h2/rules"
    (await api.call("GET", other, token=staff)).problem(403, "forbidden")

    refused = {
        "HS256": issue_token(SECRET, subject="p1", **ours),
        "no kid": issue_token(replace(ed, kid=None), subject="p1", **ours),
        "other audience": issue_token(ed, subject="p1", issuer="https://idp", audience="other"),
        "no issuer": issue_token(ed, subject="p1", audience="slotrush"),
    }
    for name, token in refused.items():
        answer = await api.call("GET", "/v1/me/bookings", token=token)
        assert answer.status == 401, name
        answer.problem(401, "unauthorized")
