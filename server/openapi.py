"""The OpenAPI 3.1 document of API.md, built from the routes the router really serves.

Paths and methods come from the router; this module only describes each operation, by its
name (the operationId). Every schema comes from server.shapes: an operation names the Struct
and the document refers to it, so the shapes it uses become its components. `build_document`
refuses a route without a description and a description without a route, so the server cannot
start with a document that drifted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from core.domain import Code
from core.errors import PROBLEMS
from server import shapes
from server.problems import PROBLEM_JSON, HttpCode
from server.validation import MAX_BODY_BYTES

_INT: Final = {"type": "integer"}
_PATH_SCHEMAS: Final = {name: shapes.schema(t) for name, t in shapes.PATH_PARAMETERS.items()}


def _query_parameters(shape: type[msgspec.Struct]) -> list[dict[str, Any]]:
    """One optional or required query parameter per field of `shape`."""
    _, components = shapes.schemas(shape)
    schema = components[shape.__name__]
    return [
        {"name": name, "in": "query", "required": name in schema["required"], "schema": field}
        for name, field in schema["properties"].items()
    ]


_IDEMPOTENCY_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A repeat with the same key and patient returns the first booking.",
    "schema": shapes.schema(shapes.IdempotencyKey),
}

_ALL_CODES: Final[dict[str, int]] = {
    **{code.value: status for code, (status, _) in PROBLEMS.items()},
    HttpCode.NOT_FOUND.value: 404,
    HttpCode.METHOD_NOT_ALLOWED.value: 405,
    HttpCode.INTERNAL_ERROR.value: 500,
}


def _json(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: str) -> dict[str, Any]:
    """One response per status, listing the codes it may carry."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(_ALL_CODES[code], []).append(code)
    responses: dict[str, Any] = {}
    for status, listed in sorted(by_status.items()):
        schema = {"allOf": [shapes.Problem, {"properties": {"code": {"enum": listed}}}]}
        response: dict[str, Any] = {
            "description": "Problem: " + ", ".join(listed),
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        if status in (429, 503):
            response["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": _INT}
            }
        responses[str(status)] = response
    return responses


def _ok(status: int, description: str, schema: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = _json(schema)
    return {str(status): response}


def _body(schema: Any) -> dict[str, Any]:
    return {"required": True, "content": _json(schema)}


_EMPTY_BODY: Final = {
    "required": False,
    "description": "Nothing, or `{}`.",
    "content": _json(shapes.NoFields),
}
_AUTH: Final = (Code.UNAUTHORIZED, Code.RATE_LIMITED, Code.BUSY)
_ADMIN: Final = (Code.UNAUTHORIZED, Code.FORBIDDEN, Code.BUSY)
_BODY: Final = (Code.INVALID_REQUEST, Code.PAYLOAD_TOO_LARGE)
_BOOKING_REFUSALS: Final = (
    Code.BLACKLISTED,
    Code.SOLD_OUT,
    Code.ALREADY_BOOKED,
    Code.DAILY_LIMIT,
    Code.DEPARTMENT_LIMIT,
    Code.NOT_OPEN,
    Code.IDEMPOTENCY_CONFLICT,
)


# operationId -> everything about the operation except its path and method.
OPERATIONS: Final[dict[str, dict[str, Any]]] = {
    "listSchedules": {
        "tags": ["patients"],
        "summary": "Schedules, filtered; at most 500.",
        "parameters": _query_parameters(shapes.ScheduleFilters),
        "responses": {
            **_ok(200, "Schedules", shapes.ScheduleList),
            **_errors(Code.INVALID_REQUEST, *_AUTH),
        },
    },
    "getSchedule": {
        "tags": ["patients"],
        "summary": "One schedule.",
        "responses": {
            **_ok(200, "The schedule", shapes.Schedule),
            **_errors(Code.SCHEDULE_NOT_FOUND, *_AUTH),
        },
    },
    "book": {
        "tags": ["patients"],
        "summary": "Book the next free number of a schedule.",
        "description": (
            "Once a schedule is sold out, this answers the same sold-out bytes for up to one "
            "second without checking the token."
        ),
        "parameters": [_IDEMPOTENCY_KEY],
        "requestBody": _EMPTY_BODY,
        "responses": {
            **_ok(
                201,
                "Booked (or the replay of an earlier booking with this key)",
                shapes.BookingEnvelope,
            ),
            **_errors(*_BODY, Code.SCHEDULE_NOT_FOUND, *_BOOKING_REFUSALS, *_AUTH),
        },
    },
    "getBooking": {
        "tags": ["patients"],
        "summary": "One of the caller's bookings.",
        "responses": {
            **_ok(200, "The booking", shapes.BookingEnvelope),
            **_errors(Code.BOOKING_NOT_FOUND, *_AUTH),
        },
    },
    "cancelBooking": {
        "tags": ["patients"],
        "summary": "Cancel one of the caller's bookings; cancelling again returns it unchanged.",
        "requestBody": _EMPTY_BODY,
        "responses": {
            **_ok(200, "The cancelled booking", shapes.BookingEnvelope),
            **_errors(*_BODY, Code.BOOKING_NOT_FOUND, Code.CANCEL_WINDOW_CLOSED, *_AUTH),
        },
    },
    "listMyBookings": {
        "tags": ["patients"],
        "summary": "The caller's bookings.",
        "responses": {
            **_ok(200, "Bookings", shapes.BookingList),
            **_errors(*_AUTH),
        },
    },
    "createSchedules": {
        "tags": ["admin"],
        "summary": f"Create one schedule or a batch of up to {shapes.MAX_BATCH}.",
        "description": "The only body allowed beyond 64 KiB (up to 8 MiB), for large batches.",
        "requestBody": _body({"oneOf": [shapes.ScheduleIn, shapes.ScheduleBatchIn]}),
        "responses": {
            **_ok(201, "Created", shapes.ScheduleList),
            **_errors(*_BODY, *_ADMIN),
        },
    },
    "putRules": {
        "tags": ["admin"],
        "summary": "Set a hospital's rules; omitted fields take their defaults.",
        "requestBody": _body(shapes.Rules),
        "responses": {**_ok(200, "The rules", shapes.Rules), **_errors(*_BODY, *_ADMIN)},
    },
    "putBlacklist": {
        "tags": ["admin"],
        "summary": "Refuse a patient new bookings at a hospital until a time.",
        "requestBody": _body(shapes.BlacklistIn),
        "responses": {
            **_ok(200, "The entry", shapes.BlacklistEntry),
            **_errors(*_BODY, *_ADMIN),
        },
    },
    "deleteBlacklist": {
        "tags": ["admin"],
        "summary": "Take a patient off a hospital's blacklist.",
        "responses": {
            **_ok(204, "Removed (or was not there)", None),
            **_errors(Code.INVALID_REQUEST, *_ADMIN),
        },
    },
    "getAudit": {
        "tags": ["admin"],
        "summary": "The invariants of API.md, counted in PostgreSQL.",
        "responses": {**_ok(200, "The audit", shapes.Audit), **_errors(*_ADMIN)},
    },
    "healthz": {
        "tags": ["operations"],
        "summary": "Whether Redis and PostgreSQL answer.",
        "security": [],
        "responses": {**_ok(200, "Healthy", shapes.Health), **_errors(Code.BUSY)},
    },
    "metrics": {
        "tags": ["operations"],
        "summary": "Prometheus metrics of every worker process.",
        "security": [],
        "responses": {
            "200": {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    },
    "openapi": {
        "tags": ["operations"],
        "summary": "This document.",
        "security": [],
        "responses": _ok(200, "OpenAPI 3.1", {"type": "object"}),
    },
    "ceiling": {
        "tags": ["operations"],
        "summary": "A constant answer with no I/O: the server's ceiling, for benchmarks.",
        "security": [],
        "responses": {
            "200": {
                "description": "Always `ok`",
                "content": {"text/plain": {"schema": {"type": "string", "const": "ok"}}},
            }
        },
    },
}

# Answers any route may give, whatever the operation.
_EVERYWHERE: Final = _errors(HttpCode.INTERNAL_ERROR)


class DocumentDrift(RuntimeError):
    """The routes served and the operations described are not the same set."""


def build_document(routes: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """The document for (method, path, operationId) routes; DocumentDrift if they differ."""
    routes = list(routes)
    served = {name for _, _, name in routes}
    undocumented = served - OPERATIONS.keys()
    unserved = OPERATIONS.keys() - served
    if undocumented or unserved:
        raise DocumentDrift(
            f"routes without a description: {sorted(undocumented)}; "
            f"descriptions without a route: {sorted(unserved)}"
        )
    paths: dict[str, dict[str, Any]] = {}
    used: dict[type[msgspec.Struct], None] = {}
    for method, path, name in routes:
        operation = {"operationId": name, **OPERATIONS[name]}
        parameters = [_path_parameter(p) for p in re.findall(r"\{(\w+)\}", path)]
        operation["parameters"] = parameters + operation.get("parameters", [])
        operation["responses"] = {**operation["responses"], **_EVERYWHERE}
        paths.setdefault(path, {})[method.lower()] = _referring(operation, used)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "slotrush",
            "version": "1",
            "description": (
                "Booking core for hospital appointment flash crowds. Errors are RFC 9457 "
                f"problem details with a stable `code`. Bodies are limited to {MAX_BODY_BYTES} "
                "bytes (413 payload_too_large) except an admin's schedule batch."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": "patients"}, {"name": "admin"}, {"name": "operations"}],
        "paths": paths,
        "components": {
            # Answers of no operation: a path that names no route, a method it does not serve.
            "responses": {
                "NotFound": _referring(_errors(HttpCode.NOT_FOUND)["404"], used),
                "MethodNotAllowed": {
                    **_referring(_errors(HttpCode.METHOD_NOT_ALLOWED)["405"], used),
                    "headers": {"Allow": {"schema": {"type": "string"}}},
                },
            },
            "schemas": shapes.schemas(*used)[1],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS[name]}


def _referring(described: Any, used: dict[type[msgspec.Struct], None]) -> Any:
    """`described` with each shape replaced by a reference to its schema, noted in `used`."""
    if isinstance(described, type) and issubclass(described, msgspec.Struct):
        used[described] = None
        return shapes.ref(described)
    if isinstance(described, dict):
        return {key: _referring(value, used) for key, value in described.items()}
    if isinstance(described, list):
        return [_referring(value, used) for value in described]
    return described
