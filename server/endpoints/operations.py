"""Operations: health, metrics, this API's own document, and the benchmarks' yardstick."""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from core.domain import Code
from server import shapes
from server.appkeys import METRICS_REGISTRY, OPENAPI_JSON
from server.health import health
from server.metrics import CONTENT_TYPE, render
from server.openapi import errors, ok
from server.route import Access, Route

_CEILING_BODY: Final = b"ok"
_CEILING_HEADERS: Final = {hdrs.CONTENT_TYPE: "text/plain"}


async def healthz(request: web.Request) -> web.Response:
    return await health(request.app)


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
