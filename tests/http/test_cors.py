"""CORS (SLOTRUSH_CORS_ORIGINS): preflights for every route, headers on every answer to an
allowed origin, errors and the sold-out fast path included, and none for anyone else. The
browser's own verdict is test_browser.py's."""

from __future__ import annotations

import aiohttp
import pytest

from server.cors import parse_origins
from server.endpoints import ROUTES
from tests.http.conftest import Client, ServeFn, admin_token, patient_token

ALLOWED = "http://127.0.0.1:3000"
ALSO_ALLOWED = "https://app.example.org"
NOT_ALLOWED = "http://127.0.0.1:3001"
SAMPLE_IDS = {
    "schedule_id": "1",
    "booking_id": "1",
    "hospital_id": "h1",
    "patient_id": "p1",
    "department_id": "d1",
    "doctor_id": "dr1",
    "provider": "sandbox",
    "notification_id": "1",
    "asset": "book.js",
}


@pytest.fixture
async def cors_api(serve: ServeFn, session: aiohttp.ClientSession) -> Client:
    env = {"SLOTRUSH_CORS_ORIGINS": f" {ALLOWED},{ALSO_ALLOWED} "}
    return Client(session, (await serve("--strategy", "pg-pessimistic", env=env)).url)


def preflight(origin: str, method: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,idempotency-key,content-type",
    }


async def test_every_route_answers_its_preflight(cors_api: Client) -> None:
    for route in ROUTES:
        path = route.path.format(**SAMPLE_IDS)
        answer = await cors_api.call("OPTIONS", path, headers=preflight(ALLOWED, route.method))
        assert answer.status == 204, (route.path, answer.status, answer.body)
        headers = answer.headers
        assert headers["Access-Control-Allow-Origin"] == ALLOWED
        assert route.method in headers["Access-Control-Allow-Methods"].split(", ")
        allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "idempotency-key", "content-type", "if-none-match"} <= allowed
        assert int(headers["Access-Control-Max-Age"]) > 0
        assert "Origin" in headers.getall("Vary")


async def test_answers_to_an_allowed_origin_are_readable_by_it(cors_api: Client) -> None:
    for origin in (ALLOWED, ALSO_ALLOWED):
        answer = await cors_api.call("GET", "/v1/hospitals", headers={"Origin": origin})
        assert answer.status == 200
        assert answer.headers["Access-Control-Allow-Origin"] == origin
        assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
        assert "Origin" in answer.headers.getall("Vary")
    # Errors too: a front end must read the problem's code.
    refused = await cors_api.call("GET", "/v1/me/bookings", headers={"Origin": ALLOWED})
    refused.problem(401, "unauthorized")
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED
    # And the sold-out fast path's answer.
    (schedule,) = await cors_api.create_schedules(
        {
            "hospital_id": "h-cors",
            "department_id": "d",
            "doctor_id": "dr",
            "visit_date": "2031-01-01",
            "period": "am",
            "capacity": 1,
        }
    )
    path = f"/v1/schedules/{schedule['id']}/bookings"
    assert (await cors_api.call("POST", path, token=patient_token("p-1"))).status == 201
    for patient in ("p-2", "p-3"):
        sold_out = await cors_api.call(
            "POST", path, token=patient_token(patient), headers={"Origin": ALLOWED}
        )
        sold_out.problem(409, "sold_out")
        assert sold_out.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_another_origin_gets_no_cors_headers(cors_api: Client) -> None:
    for headers in ({"Origin": NOT_ALLOWED}, {}):
        answer = await cors_api.call("GET", "/v1/admin/audit", token=admin_token(), headers=headers)
        assert answer.status == 200
        assert "Access-Control-Allow-Origin" not in answer.headers
    answer = await cors_api.call("OPTIONS", "/v1/hospitals", headers=preflight(NOT_ALLOWED, "GET"))
    answer.problem(405, "method_not_allowed")
    assert "Access-Control-Allow-Origin" not in answer.headers


async def test_without_origins_there_is_no_cors(api: Client) -> None:
    answer = await api.call("OPTIONS", "/v1/hospitals", headers=preflight(ALLOWED, "GET"))
    answer.problem(405, "method_not_allowed")
    plain = await api.call("GET", "/v1/hospitals", headers={"Origin": ALLOWED})
    assert not any(name.startswith("Access-Control-") for name in plain.headers)
    assert "Origin" not in plain.headers.getall("Vary", [])


def test_origins_are_scheme_host_and_port_only() -> None:
    assert parse_origins("") == ()
    assert parse_origins(" http://a.example:8080 , https://[::1]:3000,") == (
        "http://a.example:8080",
        "https://[::1]:3000",
    )
    for wrong in ("https://a.example/", "a.example", "ftp://a.example", "http://a b", "*"):
        with pytest.raises(ValueError, match="SLOTRUSH_CORS_ORIGINS"):
            parse_origins(wrong)
