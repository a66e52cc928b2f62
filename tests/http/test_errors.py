"""Hostile and broken requests: always a problem+json 4xx with a stable code, never a 5xx.

(The package's server is also checked, when it stops, for never having answered 500 and
never having logged a traceback: see conftest.api_server.)
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.http.conftest import Client, admin_token, patient_token, schedule_in, unique

KIB = 1024


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/v1"),
        ("GET", "/v1/schedules/1/bookings/2"),
        ("POST", "/v2/schedules/1/bookings"),
        ("GET", "/v1/admin"),
    ],
)
async def test_unknown_routes_are_not_found(api: Client, method: str, path: str) -> None:
    (await api.call(method, path, token=admin_token())).problem(404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v1/schedules", "GET"),
        ("DELETE", "/v1/schedules/1", "GET"),
        ("GET", "/v1/schedules/1/bookings", "POST"),
        ("PATCH", "/v1/admin/audit", "GET"),
        ("POST", "/v1/admin/hospitals/h1/blacklist/p1", "DELETE, PUT"),
        ("PUT", "/ceiling", "GET"),
    ],
)
async def test_a_wrong_method_is_not_allowed(
    api: Client, method: str, path: str, allowed: str
) -> None:
    answer = await api.call(method, path, token=admin_token())
    answer.problem(405, "method_not_allowed")
    assert answer.headers["Allow"] == allowed


async def test_bodies_over_64_kib_are_too_large(api: Client) -> None:
    schedule = await api.create_schedule()
    patient = patient_token(unique("p"))
    path = f"/v1/schedules/{schedule['id']}/bookings"
    exactly_64_kib = b"{" + b" " * (64 * KIB - 2) + b"}"
    one_more = exactly_64_kib + b" "
    (await api.call("POST", path, token=patient, data=one_more)).problem(413, "payload_too_large")
    # Authentication still comes first.
    (await api.call("POST", path, data=one_more)).problem(401, "unauthorized")
    assert (await api.call("POST", path, token=patient, data=exactly_64_kib)).status == 201
    rules = f"/v1/admin/hospitals/{unique('h')}/rules"
    answer = await api.call("PUT", rules, token=admin_token(), data=one_more)
    answer.problem(413, "payload_too_large")


async def test_only_an_admin_batch_may_be_larger_up_to_8_mib(api: Client) -> None:
    padded = b'{"schedules": [' + orjson.dumps(schedule_in()) + b"]" + b" " * (100 * KIB) + b"}"
    batch = await api.call("POST", "/v1/admin/schedules", token=admin_token(), data=padded)
    assert batch.status == 201
    huge = b" " * (8 * KIB * KIB) + padded
    answer = await api.call("POST", "/v1/admin/schedules", token=admin_token(), data=huge)
    answer.problem(413, "payload_too_large")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff\xfe{}",
        b'{"capacity": NaN}',
        b'{"capacity": Infinity}',
        b'{"capacity": 1e400}',
        b'{"capacity": 123456789012345678901234567890}',
        b"[" * 20_000 + b"]" * 20_000,
        b'{"hospital_id": "\\ud800"}',
        b"null",
        b'"schedules"',
    ],
    ids=lambda body: repr(body[:24]),
)
async def test_broken_json_is_invalid(api: Client, body: bytes) -> None:
    answer = await api.call("POST", "/v1/admin/schedules", token=admin_token(), data=body)
    answer.problem(400, "invalid_request")


@pytest.mark.parametrize("hospital", ["a b", "%C3%A9", "x" * 65, "a%2Fb", "%00"])
async def test_hostile_ids_in_admin_paths_are_invalid(api: Client, hospital: str) -> None:
    path = f"/v1/admin/hospitals/{hospital}/rules"
    (await api.call("PUT", path, token=admin_token(), json={})).problem(400, "invalid_request")


# --- generated requests ---------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=12,
)
# Mostly the right field names with values of any type: deeper than random dictionaries get.
SCHEDULE_LIKE = st.dictionaries(
    st.sampled_from([*schedule_in(), "fee_cents", "opens_at", "schedules", "extra"]),
    JSON | st.sampled_from([*schedule_in().values(), "2031-02-30", "2031-01-01T00:00Z"]),
)
# The standard library's encoder: it writes integers of any size, as a hostile client would.
BODIES = st.one_of(
    JSON.map(lambda value: json.dumps(value).encode()),
    SCHEDULE_LIKE.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=120),
)
ROUTES = st.sampled_from(
    [
        ("POST", "/v1/admin/schedules"),
        ("PUT", "/v1/admin/hospitals/{segment}/rules"),
        ("PUT", "/v1/admin/hospitals/h1/blacklist/{segment}"),
        ("DELETE", "/v1/admin/hospitals/{segment}/blacklist/p1"),
        ("POST", "/v1/schedules/{segment}/bookings"),
        ("GET", "/v1/schedules/{segment}"),
        ("GET", "/v1/bookings/{segment}"),
        ("POST", "/v1/bookings/{segment}/cancel"),
        ("GET", "/v1/schedules?hospital_id={segment}"),
        ("GET", "/v1/schedules?date={segment}"),
    ]
)
SEGMENTS = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=30)
TOKENS = st.sampled_from([admin_token(), patient_token("fuzz-patient")])
# 405 too: a segment of "." or ".." is normalised away and can land on a route that has no
# such method (POST /v1/schedules/../bookings is GET /v1/bookings's path).
ANSWERED = {200, 201, 204, 400, 403, 404, 405, 409, 413, 422}


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route=ROUTES, segment=SEGMENTS, body=BODIES, token=TOKENS)
async def test_generated_requests_never_fail_the_server(
    api: Client, route: tuple[str, str], segment: str, body: bytes, token: str
) -> None:
    method, template = route
    answer = await api.call(method, template.format(segment=segment), token=token, data=body)
    assert answer.status in ANSWERED, (answer.status, answer.body)
    if answer.status >= 400:
        problem: dict[str, Any] = answer.json
        answer.problem(answer.status, problem["code"])
