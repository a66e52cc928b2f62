"""One route: what the router serves, who may call it and what /openapi.json says of it,
side by side.

An endpoint module keeps each handler next to its Route, and the Route carries the OpenAPI
operation (summary, parameters, responses) and its Access, so a new endpoint is written, and
its roles decided, in one place. The handler enforces its Access through server.auth; the
role-matrix test holds every route to the Access it declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp.typedefs import Handler


class Access(StrEnum):
    """Who may call a route (API.md 1.1, Management: roles). A hospital administrator is
    bound to one hospital: naming another one is 403 `forbidden`, reaching another one's
    object by id is that object's 404."""

    # Anyone, without a token: operations, and the public facts a front end shows first.
    PUBLIC = "anyone, no token needed"
    # Any valid token; a hospital administrator sees only its own hospital's.
    TOKEN = "any valid token; a hospital administrator sees only its own hospital's"
    # A patient's token: the route acts for that patient.
    PATIENT = "a patient's token"
    # The platform administrator, or the administrator of the hospital the request concerns.
    STAFF = "the platform administrator, or the administrator of the hospital it concerns"
    # The platform administrator only.
    PLATFORM = "the platform administrator only"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    # The OpenAPI operationId and the route label of the HTTP metrics.
    name: str
    # The OpenAPI operation without its id, path parameters and the answers of every route;
    # shapes (msgspec Structs) may stand wherever a schema goes (see server.openapi).
    operation: dict[str, Any] = field(default_factory=dict)
    # Required: a route without a decision on who may call it does not build.
    access: Access = field(kw_only=True)
