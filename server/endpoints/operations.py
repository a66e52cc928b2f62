"""Operations: health, metrics, this API's own document, and the benchmarks' yardstick."""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import hdrs, web

from core.domain import Code
from server import shapes
from server.appkeys import METRICS_REGISTRY, OPENAPI_JSON, SETTINGS, STORES, STRATEGY
from server.encoding import json_response
from server.metrics import CONTENT_TYPE, render
from server.openapi import errors, ok
from server.problems import problem_response
from server.route import Access, Route

# /healthz gives up on a dependency that has not answered by then.
HEALTH_TIMEOUT: Final = 2.0
_CEILING_BODY: Final = b"ok"
_CEILING_HEADERS: Final = {hdrs.CONTENT_TYPE: "text/plain"}


async def healthz(request: web.Request) -> web.Response:
    strategy = request.app[STRATEGY].name
    try:
        answers = await asyncio.wait_for(request.app[STORES].ping(), HEALTH_TIMEOUT)
    except TimeoutError:
        detail, extensions = f"no answer from the stores in {HEALTH_TIMEOUT} s", {}
    else:
        if all(answers.values()):
            return json_response(shapes.Health(status="ok", strategy=strategy))
        down = ", ".join(name for name, up in answers.items() if not up)
        detail, extensions = f"unreachable: {down}", {"dependencies": answers}
    return problem_response(
        Code.BUSY,
        detail,
        retry_after=request.app[SETTINGS].busy_retry_after,
        extensions={"strategy": strategy, **extensions},
    )


async def metrics(request: web.Request) -> web.Response:
    body = render(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[OPENAPI_JSON], headers={hdrs.CONTENT_TYPE: "application/json"}
    )


async def ceiling(request: web.Request) -> web.Response:
    """A constant answer with no I/O: the most the server can do, for benchmarks."""
    return web.Response(body=_CEILING_BODY, headers=_CEILING_HEADERS)


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "GET",
        "/healthz",
        healthz,
        "healthz",
        {
            "tags": ["operations"],
            "summary": "Whether Redis and PostgreSQL answer.",
            "responses": {**ok(200, "Healthy", shapes.Health), **errors(Code.BUSY)},
        },
        access=Access.PUBLIC,
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "metrics",
        {
            "tags": ["operations"],
            "summary": "Prometheus metrics of every worker process.",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        },
        access=Access.PUBLIC,
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi,
        "openapi",
        {
            "tags": ["operations"],
            "summary": "This document.",
            "responses": ok(200, "OpenAPI 3.1", {"type": "object"}),
        },
        access=Access.PUBLIC,
    ),
    Route(
        "GET",
        "/ceiling",
        ceiling,
        "ceiling",
        {
            "tags": ["operations"],
            "summary": "A constant answer with no I/O: the server's ceiling, for benchmarks.",
            "responses": {
                "200": {
                    "description": "Always `ok`",
                    "content": {"text/plain": {"schema": {"type": "string", "const": "ok"}}},
                }
            },
        },
        access=Access.PUBLIC,
    ),
)
