"""The server against its own contract: schemathesis reads GET /openapi.json of a running
pg-pessimistic server and sends every operation generated requests, schema-valid and not,
validating each answer with every check it has (all are on by default in schemathesis 4),
one test per operation.
A birth date must not be after today and a visit date not before it, which no JSON Schema
can say: a hook moves generated birth dates into the past and visit dates that have passed
into the years to come, so positive cases stay valid.

The schema is loaded from a fixture, since the server starts there; schemathesis' lazy pytest
loader (`from_fixture`) does not run under pytest 9, so each operation gets its Hypothesis
test from `APIOperation.as_strategy` instead. A patient token authenticates every request;
admin paths get an admin token instead.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, AuthContext, BaseSchema, Case, GenerationMode, HookContext
from schemathesis.config import SchemathesisConfig

from bench.embedded import ServiceUrls
from bench.stack import serving
from core.profiles import EARLIEST_BIRTH_DATE, latest_birth_date
from loadtest.client.tokens import admin_token, new_secret, patient_token
from server.endpoints import ROUTES

# Each operation is a test of its own, under pytest's time limit for one test.
OPERATION_IDS = sorted(route.name for route in ROUTES if route.operation)
EXAMPLES_PER_OPERATION = 50
# A valid live stream lasts its shortest, one second (map_query): fewer examples of it keep
# the test under a minute.
FEWER_EXAMPLES = {"streamHospitalLive": 10}
# Answers these operations must give some generated request: their token was accepted, so
# the checks saw real answers, not only 401s.
ACCEPTED_TOKEN_ANSWERS = {
    "listMyBookings": 200,
    "createSchedules": 201,
    "putProfile": 200,
    "listHospitals": 200,
}
# Against a live server generated data is slow to produce and shrink; every example still
# runs. No example database: nothing is written into the work tree.
_LIVE_SERVER = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
# A schedule whose visit date has passed in its hospital's time zone, or that opens after its
# visit starts, is schema-valid and rightly refused (400): no schema can say "not in the
# past". So 400 joins the statuses schemathesis expects of valid data there, and every other
# check still holds; tests/http/test_schedules.py tests the refusal itself.
ACCEPTED_WITH_400 = ["2xx", "304", "400", "401", "403", "404", "409", "429", "5xx"]
# Likewise a page cursor is only valid if the server gave it out (tests/http/test_browsing.py
# tests the refusal of any other), which no schema can say either; 304 answers a generated
# `If-None-Match: *`, as documented.
# A HIS feed sent as text/csv is any string to a schema; only one with the header line of
# the feed's columns is a feed (tests/http/test_his_sync.py tests the refusal of others).
REFUSE_SCHEMA_VALID_DATA = (
    "createSchedules",
    "hisSync",
    *(
        f"list{name}"
        for name in (
            "Schedules",
            "MyBookings",
            "Hospitals",
            "Departments",
            "Doctors",
            "Blacklist",
            "Notifications",
        )
    ),
)
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-operation-id": operation_id,
                "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_WITH_400}},
            }
            for operation_id in REFUSE_SCHEMA_VALID_DATA
        ]
    }
)


@dataclass(frozen=True)
class Served:
    url: str
    patient_token: str
    admin_token: str

    def token_for(self, path: str) -> str:
        return self.admin_token if path.startswith("/v1/admin/") else self.patient_token


@pytest.fixture(scope="module")
def served(service_urls: ServiceUrls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    secret = new_secret()
    workdir = Path(tmp_path_factory.mktemp("schemathesis"))
    with serving("pg-pessimistic", 1, service_urls, secret, workdir) as (server, _):
        yield Served(server.url, patient_token(secret, "st-patient"), admin_token(secret))


@pytest.fixture(scope="module")
def api_schema(served: Served) -> BaseSchema:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json", config=CONFIG)

    class TokenByPath:
        """The admin token on admin operations, the patient's everywhere else."""

        def get(self, case: Case, ctx: AuthContext) -> str:
            return served.token_for(case.path)

        def set(self, case: Case, data: str, ctx: AuthContext) -> None:
            case.headers["Authorization"] = f"Bearer {data}"

    schema.auth(refresh_interval=None)(TokenByPath)
    schema.hook(map_body)
    schema.hook(map_query)
    return schema


def map_body(ctx: HookContext, body: Any) -> Any:
    """A profile's future birth date moved to a day from 1900 to today; a schedule's visit
    date that has passed moved to one of the next ten years; the same each time."""
    operation = ctx.operation
    if operation is None:
        return body
    if operation.label == "PUT /v1/me/profile":
        return _birth_date_in_the_past(body)
    if operation.label == "POST /v1/admin/schedules":
        if isinstance(body, dict) and isinstance(body.get("schedules"), list):
            return {**body, "schedules": [_visit_to_come(item) for item in body["schedules"]]}
        return _visit_to_come(body)
    return body


def _birth_date_in_the_past(body: Any) -> Any:
    born = _date_field(body, "birth_date")
    latest = latest_birth_date(dt.datetime.now(dt.UTC))
    if born is None or born <= latest:
        return body
    days = (latest - EARLIEST_BIRTH_DATE).days + 1
    past = EARLIEST_BIRTH_DATE + dt.timedelta(days=born.toordinal() % days)
    return {**body, "birth_date": past.isoformat()}


def _visit_to_come(item: Any) -> Any:
    """Most generated visit dates have passed (and are rightly refused): without this, a
    run could see no schedule created at all and check only refusals."""
    visit = _date_field(item, "visit_date")
    # Two days ahead: today in UTC may be yesterday in a hospital's time zone.
    soonest = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
    if visit is None or visit >= soonest:
        return item
    to_come = soonest + dt.timedelta(days=visit.toordinal() % 3650)
    return {**item, "visit_date": to_come.isoformat()}


def _date_field(body: Any, name: str) -> dt.date | None:
    if not isinstance(body, dict) or not isinstance(body.get(name), str):
        return None
    try:
        return dt.date.fromisoformat(body[name])
    except ValueError:
        return None


def map_query(ctx: HookContext, query: Any) -> Any:
    """A live stream asked to last a second: it is valid for up to an hour, and every valid
    example would hold the test for as long. Values it refuses are left as they are."""
    operation = ctx.operation
    if operation is None or operation.label != "GET /v1/admin/hospitals/{hospital_id}/live":
        return query
    if not isinstance(query, dict):
        return query
    seconds = query.get("seconds", 1)
    if isinstance(seconds, int) and not isinstance(seconds, bool) and 1 <= seconds <= 3600:
        return {**query, "seconds": 1}
    return query


def _exercise(
    operation: APIOperation,
    mode: GenerationMode,
    schema: BaseSchema,
    seen: Counter[int],
    examples: int,
) -> None:
    @settings(_LIVE_SERVER, max_examples=examples)
    @given(case=operation.as_strategy(mode, auth_storage=schema.auth))
    def check(case: Case) -> None:
        response = case.call_and_validate()
        seen[response.status_code] += 1

    check()


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_the_operation_keeps_its_contract(api_schema: BaseSchema, operation_id: str) -> None:
    operation = api_schema.find_operation_by_id(operation_id)
    failures: dict[str, BaseException] = {}
    seen: Counter[int] = Counter()
    examples = FEWER_EXAMPLES.get(operation_id, EXAMPLES_PER_OPERATION)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            _exercise(operation, mode, api_schema, seen, examples)
        except Unsatisfiable:
            # No invalid request exists for an operation that takes no input at all.
            if mode is not GenerationMode.NEGATIVE:
                raise
        # Gathered, so one run reports both modes. schemathesis raises its findings as a
        # FailureGroup, which is a BaseExceptionGroup.
        except (Exception, BaseExceptionGroup) as exc:
            failures[f"{mode.value} data"] = exc
    assert not failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())
    if operation_id in ACCEPTED_TOKEN_ANSWERS:
        assert seen[ACCEPTED_TOKEN_ANSWERS[operation_id]] > 0, seen
