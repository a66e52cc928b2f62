"""One route: what the router serves and what /openapi.json says of it, side by side.

An endpoint module keeps each handler next to its Route, and the Route carries the OpenAPI
operation (summary, parameters, responses), so a new endpoint is written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp.typedefs import Handler


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
