"""The one middleware: every request gets a deadline, every failure becomes problem+json,
every answer is counted.

One middleware rather than a chain, because every request, the sold-out fast path included,
pays for each layer.

Past its deadline a request is cancelled (nothing keeps running for it) and answered 503
`busy`, or 408 `request_timeout` when its body had not arrived: then the client is the slow
one, and its connection is closed. A client that hangs up is counted under status 499
(nginx's "client closed request"), never as a failure of a store.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from core.domain import Code
from core.errors import SlotrushError
from core.failures import STORE_UNAVAILABLE
from core.settings import Settings
from server.metrics import CONNECTIONS_CLOSED, LOAD_SHED, UNMATCHED, HttpMetrics
from server.problems import HttpCode, bad_request_code, error_response, problem_response

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
CLIENT_CLOSED = 499
# Admin endpoints take the longer deadline: a batch of 10,000 schedules, the audit.
_ADMIN_PREFIX = "/v1/admin/"
_PAST_DEADLINE = LOAD_SHED.labels("deadline")
_SLOW_BODY = CONNECTIONS_CLOSED.labels("body_timeout")


def problems_and_metrics(metrics: HttpMetrics, settings: Settings) -> Middleware:
    retry_after = settings.busy_retry_after

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = perf_counter()
        route = request.match_info.route
        resource = route.resource
        admin = resource is not None and resource.canonical.startswith(_ADMIN_PREFIX)
        seconds = settings.admin_request_timeout if admin else settings.request_timeout
        labels = (
            route.name or UNMATCHED,
            request.method if request.method in _METHODS else "other",
        )
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                response = await handler(request)
        except SlotrushError as exc:
            response = error_response(exc, default_retry_after=retry_after)
        except web.HTTPException as exc:
            response = _http_problem(exc)
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels its handler) or the server is stopping.
            if _client_gone(request):
                _client_closed(request, metrics, labels, started, "cancelled")
            raise
        except TimeoutError as exc:
            if not deadline.expired():
                response = _store_unavailable(request, exc, retry_after)
            elif not request.content.is_eof():
                _SLOW_BODY.inc()
                response = problem_response(HttpCode.REQUEST_TIMEOUT)
                response.force_close()
            else:
                _PAST_DEADLINE.inc()
                response = problem_response(
                    Code.BUSY, f"no answer within {seconds:g} s", retry_after=retry_after
                )
        except (HttpProcessingError, web.RequestPayloadError) as exc:
            # The body broke the protocol (bad chunking, a lying Content-Length).
            response = problem_response(bad_request_code(exc))
            response.force_close()
        except STORE_UNAVAILABLE as exc:
            if _client_gone(request):
                _client_closed(request, metrics, labels, started, repr(exc))
                raise
            response = _store_unavailable(request, exc, retry_after)
        except Exception:
            # A bug: logged with its traceback here, never shown to the client.
            log.exception("%s %s failed", request.method, request.path)
            response = problem_response(HttpCode.INTERNAL_ERROR)
        metrics.observe(*labels, response.status, perf_counter() - started)
        return response

    return middleware


def _client_gone(request: web.Request) -> bool:
    return request.transport is None


def _client_closed(
    request: web.Request,
    metrics: HttpMetrics,
    labels: tuple[str, str],
    started: float,
    cause: str,
) -> None:
    log.info("%s %s: the client went away (%s)", request.method, request.path, cause)
    metrics.observe(*labels, CLIENT_CLOSED, perf_counter() - started)


def _store_unavailable(request: web.Request, exc: BaseException, retry_after: int) -> web.Response:
    log.warning("%s %s: store unavailable: %r", request.method, request.path, exc)
    return problem_response(Code.BUSY, retry_after=retry_after)


def _http_problem(exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status)
    if code is None:
        log.error("unexpected %s from aiohttp: %s", exc.status, exc.reason)
        return problem_response(HttpCode.INTERNAL_ERROR)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return problem_response(code, headers={"Allow": allowed})
    return problem_response(code)
