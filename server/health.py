"""What /healthz answers: 200 once every worker serves and the stores this server uses
answer, else 503 `busy` naming what is missing.

"The stores this server uses" are the strategy's own (a PostgreSQL strategy stays healthy
while Redis is down) plus Redis when rate limits are on, since those are counted there.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from core.domain import Code
from core.stores import Store
from server import shapes
from server.appkeys import RATE_LIMITER, SETTINGS, STORES, STRATEGY, WORKERS
from server.encoding import json_response
from server.problems import problem_response

# /healthz gives up on a store that has not answered by then.
HEALTH_TIMEOUT: Final = 2.0


def stores_needed(app: web.Application) -> frozenset[Store]:
    needed = set(app[STRATEGY].stores_needed)
    if app[RATE_LIMITER].enabled:
        needed.add(Store.REDIS)
    return frozenset(needed)


async def health(app: web.Application) -> web.Response:
    workers = app[WORKERS]
    serving = workers.serving()
    if serving < workers.expected:
        return _unhealthy(
            app,
            f"{serving} of {workers.expected} workers serving",
            {"workers": {"serving": serving, "expected": workers.expected}},
        )
    try:
        answers = await asyncio.wait_for(app[STORES].ping(stores_needed(app)), HEALTH_TIMEOUT)
    except TimeoutError:
        return _unhealthy(app, f"no answer from the stores in {HEALTH_TIMEOUT} s", {})
    if all(answers.values()):
        return json_response(shapes.Health(status="ok", strategy=app[STRATEGY].name))
    down = ", ".join(name for name, up in answers.items() if not up)
    return _unhealthy(app, f"unreachable: {down}", {"dependencies": answers})


def _unhealthy(app: web.Application, detail: str, extensions: dict[str, Any]) -> web.Response:
    return problem_response(
        Code.BUSY,
        detail,
        retry_after=app[SETTINGS].busy_retry_after,
        extensions={"strategy": app[STRATEGY].name, **extensions},
    )
