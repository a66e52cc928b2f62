"""RFC 9457 problem details: every error answer of the server is built here.

Bodies without a detail are encoded once at import; the common answers (sold out, busy,
unauthorized) then cost one Response object and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

import orjson
from aiohttp import web
from aiohttp.http_exceptions import DecompressSizeError, LineTooLong
from multidict import CIMultiDict, CIMultiDictProxy

from core.domain import Code
from core.errors import PROBLEMS, SlotrushError

PROBLEM_JSON: Final = "application/problem+json"


class HttpCode(StrEnum):
    """Codes of the HTTP layer itself, beside the domain codes of API.md."""

    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    HEADERS_TOO_LARGE = "headers_too_large"
    INTERNAL_ERROR = "internal_error"


# code -> (status, title) for every code a client can see.
ALL_PROBLEMS: Final[dict[str, tuple[int, str]]] = {
    **{code.value: status_title for code, status_title in PROBLEMS.items()},
    HttpCode.NOT_FOUND: (404, "Not found"),
    HttpCode.METHOD_NOT_ALLOWED: (405, "Method not allowed"),
    HttpCode.REQUEST_TIMEOUT: (408, "Request body not received in time"),
    HttpCode.HEADERS_TOO_LARGE: (431, "Request header fields too large"),
    HttpCode.INTERNAL_ERROR: (500, "Internal server error"),
}
# Statuses whose answers say when to come back (API.md: 429 and 503 carry Retry-After).
_RETRY_STATUSES: Final = frozenset({429, 503})


def problem_body(
    code: str, detail: str | None = None, extensions: Mapping[str, Any] | None = None
) -> bytes:
    status, title = ALL_PROBLEMS[code]
    problem: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail is not None:
        problem["detail"] = detail
    if extensions:
        problem.update(extensions)
    return orjson.dumps(problem)


_BODIES: Final[dict[str, bytes]] = {code: problem_body(code) for code in ALL_PROBLEMS}
_HEADERS: Final = CIMultiDictProxy(CIMultiDict({"Content-Type": PROBLEM_JSON}))
_UNAUTHORIZED_HEADERS: Final = CIMultiDictProxy(
    CIMultiDict({"Content-Type": PROBLEM_JSON, "WWW-Authenticate": "Bearer"})
)


def problem_response(
    code: str,
    detail: str | None = None,
    *,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> web.Response:
    status = ALL_PROBLEMS[code][0]
    if detail is None and not extensions:
        body = _BODIES[code]
    else:
        body = problem_body(code, detail, extensions)
    base = _UNAUTHORIZED_HEADERS if status == 401 else _HEADERS
    if retry_after is None and headers is None:
        return web.Response(body=body, status=status, headers=base)
    merged = CIMultiDict(base)
    if retry_after is not None:
        merged["Retry-After"] = str(retry_after)
    if headers:
        merged.update(headers)
    return web.Response(body=body, status=status, headers=merged)


def error_response(exc: SlotrushError, *, default_retry_after: int) -> web.Response:
    retry_after = exc.retry_after
    if retry_after is None and exc.status in _RETRY_STATUSES:
        retry_after = default_retry_after
    return problem_response(exc.code, exc.detail, retry_after=retry_after)


def bad_request_code(exc: BaseException) -> str:
    """The code of a request that broke HTTP itself, as aiohttp's parser found it."""
    if isinstance(exc, LineTooLong):
        return HttpCode.HEADERS_TOO_LARGE
    if isinstance(exc, DecompressSizeError):
        return Code.PAYLOAD_TOO_LARGE
    return Code.INVALID_REQUEST
