"""The OpenAPI 3.1 document of API.md, built from the routes the router really serves.

Paths and methods come from the router; this module only describes each operation, by its
name (the operationId). `build_document` refuses a route without a description and a
description without a route, so the server cannot start with a document that drifted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from core.domain import Code
from core.errors import PROBLEMS
from server.problems import PROBLEM_JSON, HttpCode
from server.validation import (
    MAX_BATCH,
    MAX_BIGINT,
    MAX_BODY_BYTES,
    MAX_CAPACITY,
    MAX_INT,
    TIME_PATTERN,
)

_ID = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}
_SERIAL = {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"}
_TIME = {"type": "string", "format": "date-time", "pattern": TIME_PATTERN}
_DATE = {"type": "string", "format": "date"}
_INT = {"type": "integer"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_SCHEDULE_IN_PROPERTIES: dict[str, Any] = {
    "hospital_id": _ID,
    "department_id": _ID,
    "doctor_id": _ID,
    "visit_date": _DATE,
    "period": {"type": "string", "enum": ["am", "pm", "night"]},
    "capacity": {"type": "integer", "minimum": 1, "maximum": MAX_CAPACITY},
    "fee_cents": {"type": "integer", "minimum": 0, "maximum": MAX_BIGINT, "default": 0},
    "opens_at": {**_TIME, "description": "Bookable from then on; default: when created."},
}
_SCHEDULE_IN_REQUIRED = ["hospital_id", "department_id", "doctor_id", "visit_date"]
_SCHEDULE_IN_REQUIRED += ["period", "capacity"]

SCHEMAS: Final[dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details. Clients branch on `code`, never on `title`.",
        "properties": {
            "type": {"type": "string", "const": "about:blank"},
            "title": {"type": "string"},
            "status": _INT,
            "code": {"type": "string"},
            "detail": {"type": "string"},
        },
        "required": ["type", "title", "status", "code"],
    },
    "ScheduleIn": _object(_SCHEDULE_IN_PROPERTIES, _SCHEDULE_IN_REQUIRED),
    "ScheduleBatchIn": _object(
        {
            "schedules": {
                "type": "array",
                "items": _ref("ScheduleIn"),
                "minItems": 1,
                "maxItems": MAX_BATCH,
            }
        },
        ["schedules"],
    ),
    "Schedule": _object(
        {
            "id": _SERIAL,
            **_SCHEDULE_IN_PROPERTIES,
            "opens_at": _TIME,
            "remaining": {
                "type": "integer",
                "minimum": 0,
                "description": "May lag by up to one second.",
            },
            "status": {"type": "string", "enum": ["open", "sold_out", "not_open"]},
        },
        ["id", *_SCHEDULE_IN_REQUIRED, "fee_cents", "opens_at", "remaining", "status"],
    ),
    "Booking": _object(
        {
            "id": _SERIAL,
            "schedule_id": _SERIAL,
            "patient_id": _ID,
            "hospital_id": _ID,
            "department_id": _ID,
            "visit_date": _DATE,
            "number": {"type": "integer", "minimum": 1},
            "verification_code": {"type": "string", "minLength": 6},
            "status": {"type": "string", "enum": ["booked", "cancelled"]},
            "created_at": _TIME,
            "cancelled_at": {"oneOf": [_TIME, {"type": "null"}]},
        },
        [
            "id",
            "schedule_id",
            "patient_id",
            "hospital_id",
            "department_id",
            "visit_date",
            "number",
            "verification_code",
            "status",
            "created_at",
            "cancelled_at",
        ],
    ),
    "BookingEnvelope": _object({"booking": _ref("Booking")}, ["booking"]),
    "Rules": _object(
        {
            "max_per_day": {"type": "integer", "minimum": 1, "maximum": MAX_INT, "default": 2},
            "max_per_department_per_day": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_INT,
                "default": 1,
            },
            "cancel_cutoff_minutes": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_INT,
                "default": 0,
            },
        }
    ),
    "BlacklistIn": _object({"until": _TIME}, ["until"]),
    "BlacklistEntry": _object(
        {"hospital_id": _ID, "patient_id": _ID, "until": _TIME},
        ["hospital_id", "patient_id", "until"],
    ),
    "Audit": _object(
        {
            "schedules": {
                "type": "array",
                "items": _object(
                    {
                        "id": _SERIAL,
                        "capacity": _INT,
                        "booked": _INT,
                        "remaining": _INT,
                        "oversold": {"type": "boolean"},
                    },
                    ["id", "capacity", "booked", "remaining", "oversold"],
                ),
            },
            "oversold": _INT,
            "duplicate_numbers": _INT,
            "duplicate_patients": _INT,
            "limit_violations": _INT,
        },
        ["schedules", "oversold", "duplicate_numbers", "duplicate_patients", "limit_violations"],
    ),
    "Health": _object(
        {"status": {"type": "string", "const": "ok"}, "strategy": {"type": "string"}},
        ["status", "strategy"],
    ),
}

# Path parameters by name: lookup ids are canonical positive integers, the rest are HIS ids.
_PATH_PARAMETERS: Final[dict[str, dict[str, Any]]] = {
    "schedule_id": _SERIAL,
    "booking_id": _SERIAL,
    "hospital_id": _ID,
    "patient_id": _ID,
}
_QUERY_FILTERS: Final[list[dict[str, Any]]] = [
    {"name": name, "in": "query", "required": False, "schema": schema}
    for name, schema in (
        ("hospital_id", _ID),
        ("department_id", _ID),
        ("doctor_id", _ID),
        ("date", {**_DATE, "description": "Filters visit_date."}),
    )
]
_IDEMPOTENCY_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A repeat with the same key and patient returns the first booking.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"},
}

_ALL_CODES: Final[dict[str, int]] = {
    **{code.value: status for code, (status, _) in PROBLEMS.items()},
    HttpCode.NOT_FOUND.value: 404,
    HttpCode.METHOD_NOT_ALLOWED.value: 405,
    HttpCode.REQUEST_TIMEOUT.value: 408,
    HttpCode.HEADERS_TOO_LARGE.value: 431,
    HttpCode.INTERNAL_ERROR.value: 500,
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: str) -> dict[str, Any]:
    """One response per status, listing the codes it may carry."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(_ALL_CODES[code], []).append(code)
    responses: dict[str, Any] = {}
    for status, listed in sorted(by_status.items()):
        schema = {"allOf": [_ref("Problem"), {"properties": {"code": {"enum": listed}}}]}
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


def _ok(status: int, description: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = _json(schema)
    return {str(status): response}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": _json(schema)}


_EMPTY_BODY: Final = {
    "required": False,
    "description": "Nothing, or `{}`.",
    "content": _json({"type": "object", "maxProperties": 0}),
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
        "parameters": _QUERY_FILTERS,
        "responses": {
            **_ok(
                200,
                "Schedules",
                _object({"schedules": {"type": "array", "items": _ref("Schedule")}}, ["schedules"]),
            ),
            **_errors(Code.INVALID_REQUEST, *_AUTH),
        },
    },
    "getSchedule": {
        "tags": ["patients"],
        "summary": "One schedule.",
        "responses": {
            **_ok(200, "The schedule", _ref("Schedule")),
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
                _ref("BookingEnvelope"),
            ),
            **_errors(*_BODY, Code.SCHEDULE_NOT_FOUND, *_BOOKING_REFUSALS, *_AUTH),
        },
    },
    "getBooking": {
        "tags": ["patients"],
        "summary": "One of the caller's bookings.",
        "responses": {
            **_ok(200, "The booking", _ref("BookingEnvelope")),
            **_errors(Code.BOOKING_NOT_FOUND, *_AUTH),
        },
    },
    "cancelBooking": {
        "tags": ["patients"],
        "summary": "Cancel one of the caller's bookings; cancelling again returns it unchanged.",
        "requestBody": _EMPTY_BODY,
        "responses": {
            **_ok(200, "The cancelled booking", _ref("BookingEnvelope")),
            **_errors(*_BODY, Code.BOOKING_NOT_FOUND, Code.CANCEL_WINDOW_CLOSED, *_AUTH),
        },
    },
    "listMyBookings": {
        "tags": ["patients"],
        "summary": "The caller's bookings.",
        "responses": {
            **_ok(
                200,
                "Bookings",
                _object({"bookings": {"type": "array", "items": _ref("Booking")}}, ["bookings"]),
            ),
            **_errors(*_AUTH),
        },
    },
    "createSchedules": {
        "tags": ["admin"],
        "summary": f"Create one schedule or a batch of up to {MAX_BATCH}.",
        "description": "The only body allowed beyond 64 KiB (up to 8 MiB), for large batches.",
        "requestBody": _body({"oneOf": [_ref("ScheduleIn"), _ref("ScheduleBatchIn")]}),
        "responses": {
            **_ok(
                201,
                "Created",
                _object({"schedules": {"type": "array", "items": _ref("Schedule")}}, ["schedules"]),
            ),
            **_errors(*_BODY, *_ADMIN),
        },
    },
    "putRules": {
        "tags": ["admin"],
        "summary": "Set a hospital's rules; omitted fields take their defaults.",
        "requestBody": _body(_ref("Rules")),
        "responses": {**_ok(200, "The rules", _ref("Rules")), **_errors(*_BODY, *_ADMIN)},
    },
    "putBlacklist": {
        "tags": ["admin"],
        "summary": "Refuse a patient new bookings at a hospital until a time.",
        "requestBody": _body(_ref("BlacklistIn")),
        "responses": {
            **_ok(200, "The entry", _ref("BlacklistEntry")),
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
        "responses": {**_ok(200, "The audit", _ref("Audit")), **_errors(*_ADMIN)},
    },
    "healthz": {
        "tags": ["operations"],
        "summary": "Whether Redis and PostgreSQL answer.",
        "security": [],
        "responses": {**_ok(200, "Healthy", _ref("Health")), **_errors(Code.BUSY)},
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

# Answers any route may give, whatever the operation: a request HTTP's parser refuses, a
# body that does not arrive before the deadline, a bug. An operation's own list comes first.
_EVERYWHERE: Final = _errors(
    Code.INVALID_REQUEST,
    HttpCode.REQUEST_TIMEOUT,
    HttpCode.HEADERS_TOO_LARGE,
    HttpCode.INTERNAL_ERROR,
)


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
    for method, path, name in routes:
        operation = {"operationId": name, **OPERATIONS[name]}
        parameters = [_path_parameter(p) for p in re.findall(r"\{(\w+)\}", path)]
        operation["parameters"] = parameters + operation.get("parameters", [])
        operation["responses"] = {**_EVERYWHERE, **operation["responses"]}
        paths.setdefault(path, {})[method.lower()] = operation
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
                "NotFound": _errors(HttpCode.NOT_FOUND)["404"],
                "MethodNotAllowed": {
                    **_errors(HttpCode.METHOD_NOT_ALLOWED)["405"],
                    "headers": {"Allow": {"schema": {"type": "string"}}},
                },
            },
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMETERS[name]}
