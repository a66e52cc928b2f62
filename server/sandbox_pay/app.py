"""The sandbox provider's HTTP API.

```
POST /checkouts {"reference", "amount_cents"}   201 checkout (200: this reference's, again)
GET  /checkouts/{ref}                           200 checkout
POST /checkouts/{ref}/complete {"outcome": "succeeded"|"declined"}
                                                200 checkout; its webhook is sent
POST /checkouts/{ref}/refunds {"amount_cents"}  201 refund (200: the checkout's one, again)
     with an Idempotency-Key
GET  /control   POST /control {fault: value...} 200 the faults in force (delivery.Faults)
GET  /deliveries                                200 every webhook attempt so far
```
A checkout is `{ref, url, reference, amount_cents, status, charge_ref, refunds}`; errors
are `{"error": text}`. `fail` and `timeout` affect the API a merchant calls (checkouts,
refunds, queries), never completing a checkout, which is the patient's side.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web

from server.sandbox_pay.delivery import Deliverer, Faults
from server.sandbox_pay.state import Checkout, Ledger, new_ref

LEDGER: Final = web.AppKey("ledger", Ledger)
FAULTS: Final = web.AppKey("faults", Faults)
DELIVERER: Final = web.AppKey("deliverer", Deliverer)
OUTCOMES: Final = frozenset({"succeeded", "declined"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    secret: str, faults: Faults | None = None, journal: Path | None = None
) -> web.Application:
    """The sandbox; with a `journal`, it remembers its checkouts, refunds and undelivered
    notices across a restart (state.Ledger)."""
    app = web.Application()
    app[LEDGER] = Ledger(journal)
    app[FAULTS] = faults or Faults()
    app.add_routes(
        [
            web.post("/checkouts", _merchant(open_checkout)),
            web.get("/checkouts/{ref}", _merchant(get_checkout)),
            web.post("/checkouts/{ref}/complete", complete),
            web.post("/checkouts/{ref}/refunds", _merchant(refund)),
            web.get("/control", get_control),
            web.post("/control", set_control),
            web.get("/deliveries", deliveries),
        ]
    )

    async def deliverer(app: web.Application) -> AsyncIterator[None]:
        app[DELIVERER] = Deliverer(app[FAULTS], secret, app[LEDGER])
        app[DELIVERER].resend_undelivered()
        yield
        await app[DELIVERER].close()
        app[LEDGER].close()

    app.cleanup_ctx.append(deliverer)
    return app


def _answer(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda v: orjson.dumps(v).decode())


def _http_error(status: int, text: str) -> web.HTTPException:
    error = web.HTTPException(text=orjson.dumps({"error": text}).decode())
    error.set_status(status)
    error.content_type = "application/json"
    return error


def _merchant(handler: Handler) -> Handler:
    """The merchant's API, which the faults in force affect."""

    async def faulty(request: web.Request) -> web.StreamResponse:
        faults = request.app[FAULTS]
        if faults.timeout:
            await asyncio.sleep(faults.timeout)
        if faults.fail:
            raise _http_error(503, "told to fail")
        return await handler(request)

    return faulty


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _http_error(400, f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _http_error(400, "not a JSON object")
    return body


def _amount(body: dict[str, Any]) -> int:
    amount = body.get("amount_cents")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise _http_error(400, "amount_cents must be a positive integer")
    return amount


def _checkout(request: web.Request) -> Checkout:
    found = request.app[LEDGER].checkouts.get(request.match_info["ref"])
    if found is None:
        raise _http_error(404, "no such checkout")
    return found


def _base_url(request: web.Request) -> str:
    return str(request.url.origin())


async def open_checkout(request: web.Request) -> web.Response:
    body = await _body(request)
    reference = body.get("reference")
    if not isinstance(reference, str) or not 1 <= len(reference) <= 200:
        raise _http_error(400, "reference must be a string of 1..200 characters")
    checkout, opened = request.app[LEDGER].open(reference, _amount(body))
    if checkout.amount_cents != body["amount_cents"]:
        raise _http_error(409, "this reference was opened for another amount")
    return _answer(checkout.as_json(_base_url(request)), 201 if opened else 200)


async def get_checkout(request: web.Request) -> web.Response:
    return _answer(_checkout(request).as_json(_base_url(request)))


async def complete(request: web.Request) -> web.Response:
    checkout = _checkout(request)
    outcome = (await _body(request)).get("outcome")
    if outcome not in OUTCOMES:
        raise _http_error(400, "outcome must be succeeded or declined")
    if checkout.status != "open":
        raise _http_error(409, f"already {checkout.status}")
    checkout.status = outcome
    if outcome == "succeeded":
        checkout.charge_ref = new_ref("ch")
    request.app[LEDGER].changed(checkout)
    request.app[DELIVERER].send(
        {
            "id": new_ref("evt"),
            "type": f"checkout.{outcome}",
            "created": int(time.time()),
            "data": {
                "checkout_ref": checkout.ref,
                "reference": checkout.reference,
                "amount_cents": checkout.amount_cents,
                "charge_ref": checkout.charge_ref,
            },
        }
    )
    return _answer(checkout.as_json(_base_url(request)))


async def refund(request: web.Request) -> web.Response:
    checkout = _checkout(request)
    key = request.headers.get("Idempotency-Key")
    if not key:
        raise _http_error(400, "an Idempotency-Key is required")
    if _amount(await _body(request)) != checkout.amount_cents:
        raise _http_error(400, "only a full refund is possible")
    if checkout.status != "succeeded":
        raise _http_error(409, f"a {checkout.status} checkout has nothing to refund")
    made, new = request.app[LEDGER].refund(checkout, key)
    answer = {"refund_ref": made.ref, "amount_cents": made.amount_cents, "status": "succeeded"}
    return _answer(answer, 201 if new else 200)


async def get_control(request: web.Request) -> web.Response:
    return _answer(request.app[FAULTS].as_json())


async def set_control(request: web.Request) -> web.Response:
    faults = request.app[FAULTS]
    known = {f.name for f in fields(faults)}
    for name, value in (await _body(request)).items():
        if name not in known:
            raise _http_error(400, f"no fault {name!r}; known: {sorted(known)}")
        if not _fits(getattr(Faults(), name), value):
            raise _http_error(400, f"{name}: {value!r} is not of its kind")
        setattr(faults, name, value)
    return _answer(faults.as_json())


def _fits(default: object, value: object) -> bool:
    """Whether `value` may replace `default` (a flag, a number of seconds, a URL or null)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return value is None or isinstance(value, str)


async def deliveries(request: web.Request) -> web.Response:
    return _answer([asdict(d) for d in request.app[DELIVERER].log])
