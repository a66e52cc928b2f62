"""The one middleware: every failure becomes problem+json, every answer is counted.

One middleware rather than a chain, because every request, the sold-out fast path included,
pays for each layer.
"""

from __future__ import annotations

import logging
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from core.domain import Code
from core.errors import SlotrushError
from core.failures import STORE_UNAVAILABLE
from server.metrics import UNMATCHED, HttpMetrics
from server.problems import HttpCode, error_response, problem_response

log = logging.getLogger("slotrush.server")

# Methods worth a label of their own; anything a client invents shares one.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# What aiohttp raises itself, by status, as our codes.
_HTTP_CODES: dict[int, str] = {
    400: Code.INVALID_REQUEST,
    404: HttpCode.NOT_FOUND,
    405: HttpCode.METHOD_NOT_ALLOWED,
    413: Code.PAYLOAD_TOO_LARGE,
}


def problems_and_metrics(metrics: HttpMetrics, *, retry_after: int) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = perf_counter()
        try:
            response = await handler(request)
        except SlotrushError as exc:
            response = error_response(exc, default_retry_after=retry_after)
        except web.HTTPException as exc:
            response = _http_problem(exc)
        except STORE_UNAVAILABLE as exc:
            log.warning("%s %s: store unavailable: %r", request.method, request.path, exc)
            response = problem_response(Code.BUSY, retry_after=retry_after)
        except Exception:
            # A bug: logged with its traceback here, never shown to the client.
            log.exception("%s %s failed", request.method, request.path)
            response = problem_response(HttpCode.INTERNAL_ERROR)
        route = request.match_info.route.name or UNMATCHED
        method = request.method if request.method in _METHODS else "other"
        metrics.observe(route, method, response.status, perf_counter() - started)
        return response

    return middleware


def _http_problem(exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status)
    if code is None:
        log.error("unexpected %s from aiohttp: %s", exc.status, exc.reason)
        return problem_response(HttpCode.INTERNAL_ERROR)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return problem_response(code, headers={"Allow": allowed})
    return problem_response(code)
