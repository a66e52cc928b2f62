"""The OpenAPI 3.1 document of API.md, built from the routes the router really serves.

Each Route of the table (server.endpoints) carries its operation, written with the helpers
here; every schema comes from server.shapes: an operation names the Struct and the document
refers to it, so the shapes it uses become its components. `build_document` refuses a route
the router serves without a description and a description the router does not serve, so the
server cannot start with a document that drifted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from core.domain import Code
from server import shapes
from server.problems import ALL_PROBLEMS, PROBLEM_JSON, HttpCode
from server.route import Access, Route
from server.validation import MAX_BODY_BYTES

_INT: Final = {"type": "integer"}
_PATH_SCHEMAS: Final = {name: shapes.schema(t) for name, t in shapes.PATH_PARAMETERS.items()}


def query_parameters(shape: type[msgspec.Struct]) -> list[dict[str, Any]]:
    """One optional or required query parameter per field of `shape`."""
    _, components = shapes.schemas(shape)
    schema = components[shape.__name__]
    return [
        {"name": name, "in": "query", "required": name in schema["required"], "schema": field}
        for name, field in schema["properties"].items()
    ]


IDEMPOTENCY_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A repeat with the same key and patient returns the first booking.",
    "schema": shapes.schema(shapes.IdempotencyKey),
}

IF_NONE_MATCH: Final = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of an earlier answer: 304 without a body while it is current.",
    "schema": {"type": "string"},
}

_ALL_CODES: Final[dict[str, int]] = {code: status for code, (status, _) in ALL_PROBLEMS.items()}


def _json(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def errors(*codes: str) -> dict[str, Any]:
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


def ok(status: int, description: str, schema: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = _json(schema)
    return {str(status): response}


def ok_cached(description: str, schema: Any) -> dict[str, Any]:
    """200 with an ETag and a Cache-Control, and 304 for a request naming that ETag (see
    server.caching); the operation takes IF_NONE_MATCH."""
    headers = {
        "ETag": {"description": "A strong hash of the body.", "schema": {"type": "string"}},
        "Cache-Control": {
            "description": "Who may keep it, how long.",
            "schema": {"type": "string"},
        },
    }
    return {
        "200": {"description": description, "headers": headers, "content": _json(schema)},
        "304": {"description": "Not modified: If-None-Match named the current ETag."},
    }


def json_body(schema: Any) -> dict[str, Any]:
    return {"required": True, "content": _json(schema)}


EMPTY_BODY: Final = {
    "required": False,
    "description": "Nothing, or `{}`.",
    "content": _json(shapes.NoFields),
}
AUTH: Final = (Code.UNAUTHORIZED, Code.RATE_LIMITED, Code.BUSY)
ADMIN: Final = (Code.UNAUTHORIZED, Code.FORBIDDEN, Code.BUSY)
BODY: Final = (Code.INVALID_REQUEST, Code.PAYLOAD_TOO_LARGE)


# Answers any route may give, whatever the operation: a request HTTP's parser refuses, a
# body that does not arrive before the deadline, a bug. An operation's own list comes first.
_EVERYWHERE: Final = errors(
    Code.INVALID_REQUEST,
    HttpCode.REQUEST_TIMEOUT,
    HttpCode.HEADERS_TOO_LARGE,
    HttpCode.INTERNAL_ERROR,
)


class DocumentDrift(RuntimeError):
    """The routes served and the routes described are not the same set."""


def build_document(
    routes: Sequence[Route], served: Iterable[tuple[str, str, str]]
) -> dict[str, Any]:
    """The document of the route table; DocumentDrift unless the router serves exactly its
    (method, path, operationId) triples and every route carries its operation."""
    described = {(r.method, r.path, r.name) for r in routes if r.operation}
    served = set(served)
    if described != served:
        raise DocumentDrift(
            f"routes without a description: {sorted(served - described)}; "
            f"descriptions without a route: {sorted(described - served)}"
        )
    paths: dict[str, dict[str, Any]] = {}
    used: dict[type[msgspec.Struct], None] = {}
    for route in routes:
        operation = {"operationId": route.name, **route.operation}
        operation["description"] = " ".join(
            (f"Who may call: {route.access.value}.", operation.get("description", ""))
        ).strip()
        if route.access is Access.PUBLIC:
            operation["security"] = []
        parameters = [_path_parameter(p) for p in re.findall(r"\{(\w+)\}", route.path)]
        operation["parameters"] = parameters + operation.get("parameters", [])
        operation["responses"] = {**_EVERYWHERE, **operation["responses"]}
        paths.setdefault(route.path, {})[route.method.lower()] = _referring(operation, used)
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
        "tags": [
            {"name": "patients"},
            {"name": "admin"},
            {"name": "browsing"},
            {"name": "operations"},
            {"name": "pages"},
        ],
        "paths": paths,
        "components": {
            # Answers of no operation: a path that names no route, a method it does not serve.
            "responses": {
                "NotFound": _referring(errors(HttpCode.NOT_FOUND)["404"], used),
                "MethodNotAllowed": {
                    **_referring(errors(HttpCode.METHOD_NOT_ALLOWED)["405"], used),
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
