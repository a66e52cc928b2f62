"""Operations endpoints: health, metrics, the OpenAPI document (which cannot drift from the
routes served) and the constant ceiling."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from bench.child_server import free_port
from core.domain import Code
from core.settings import Settings
from server.app import create_app, served_routes
from server.endpoints import ROUTES
from server.openapi import DocumentDrift, build_document
from server.problems import HttpCode
from strategies.pg_pessimistic import PgPessimistic
from tests.http.conftest import SECRET, Client, ServeFn, metric, unique


async def test_healthz_names_the_strategy(api: Client) -> None:
    answer = await api.call("GET", "/healthz")
    assert answer.status == 200
    assert answer.json == {"status": "ok", "strategy": "pg-pessimistic"}


@pytest.mark.parametrize(
    ("strategy", "env", "healthy"),
    [
        ("pg-pessimistic", {}, True),
        ("redis-lua", {}, False),
        # Rate limits are counted in Redis: then a PostgreSQL strategy needs it too.
        ("pg-pessimistic", {"SLOTRUSH_RATE_LIMIT_PATIENT": "100/second"}, False),
    ],
)
async def test_healthz_checks_the_stores_the_server_uses_and_only_those(
    serve: ServeFn,
    session: aiohttp.ClientSession,
    strategy: str,
    env: dict[str, str],
    healthy: bool,
) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    served = await serve("--strategy", strategy, env={"REDIS_URL": nobody_listens, **env})
    answer = await Client(session, served.url).call("GET", "/healthz")
    if healthy:
        assert answer.status == 200, answer.body
        assert answer.json == {"status": "ok", "strategy": strategy}
        return
    problem = answer.problem(503, "busy", frozenset({"strategy", "dependencies"}))
    assert int(answer.headers["Retry-After"]) >= 1
    assert problem["dependencies"] == {"redis": False, "postgres": True}
    assert "redis" in problem["detail"]


async def test_metrics_count_requests_outcomes_and_latency(api: Client) -> None:
    schedule = await api.create_schedule(capacity=1)
    before = await metric(api, "slotrush_http_requests_total", route="book", status="201")
    assert (await api.book(schedule["id"], unique("p"))).status == 201
    assert (await api.book(schedule["id"], unique("p"))).status == 409

    answer = await api.call("GET", "/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(answer.body.decode())}
    assert families >= {
        "slotrush_http_requests",
        "slotrush_http_request_seconds",
        "slotrush_booking_outcomes",
        "slotrush_booking_seconds",
        "slotrush_sold_out_fast_path",
        "slotrush_reconciler_actions",
    }
    after = await metric(api, "slotrush_http_requests_total", route="book", status="201")
    assert after == before + 1
    assert await metric(api, "slotrush_http_requests_total", route="book", status="409") >= 1
    assert await metric(api, "slotrush_http_request_seconds_count", route="book") >= 2
    booked = await metric(api, "slotrush_booking_outcomes_total", code="booked")
    assert booked >= 1


async def test_paths_that_match_no_route_share_one_label(api: Client) -> None:
    for i in range(3):
        await api.call("GET", f"/scan-{unique(str(i))}")
    assert await metric(api, "slotrush_http_requests_total", route="unmatched", status="404") >= 3
    answer = await api.call("GET", "/metrics")
    assert b"/scan-" not in answer.body


async def test_the_ceiling_is_a_constant(api: Client) -> None:
    answers = [await api.call("GET", "/ceiling") for _ in range(3)]
    assert {(a.status, a.body) for a in answers} == {(200, b"ok")}


# --- the OpenAPI document -----------------------------------------------------------------------


@pytest.fixture
async def document(api: Client) -> dict[str, Any]:
    answer = await api.call("GET", "/openapi.json")
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"
    served: dict[str, Any] = orjson.loads(answer.body)
    return served


async def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_the_document_lists_exactly_the_routes_served(document: dict[str, Any]) -> None:
    # The application as the server builds it; creating it does no I/O.
    settings = Settings(
        redis_url="redis://unused", database_url="postgresql://unused", secret=SECRET
    )
    app = create_app(settings, strategy=PgPessimistic)
    served = {(method.lower(), path) for method, path, _ in served_routes(app)}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == served


def test_a_route_without_a_description_or_the_reverse_stops_the_server() -> None:
    served = [(r.method, r.path, r.name) for r in ROUTES]
    build_document(ROUTES, served)
    with pytest.raises(DocumentDrift, match="descriptions without a route"):
        build_document(ROUTES, served[1:])
    with pytest.raises(DocumentDrift, match="routes without a description"):
        build_document(ROUTES, [*served, ("GET", "/new", "brandNew")])
    undescribed = replace(ROUTES[0], operation={})
    with pytest.raises(DocumentDrift, match="routes without a description"):
        build_document([undescribed, *ROUTES[1:]], served)


async def test_every_error_code_is_documented(document: dict[str, Any]) -> None:
    text = orjson.dumps(document).decode()
    for code in [*Code, *HttpCode]:
        assert f'"{code.value}"' in text, code
