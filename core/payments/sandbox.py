"""The sandbox provider's adapter: slotrush's own test provider (`slotrush sandbox-pay`,
server/sandbox_pay.py), spoken to over HTTP like any real one.

Its API: `POST /checkouts {"reference", "amount_cents"}` opens a checkout (the same reference
answers the same one), `GET /checkouts/{ref}` reads it, `POST /checkouts/{ref}/refunds
{"amount_cents"}` with an `Idempotency-Key` refunds it (a checkout is refunded once: asking
again answers that refund). Its webhooks are JSON notices signed by core.payments.signing.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
import orjson

from core.payments import signing
from core.payments.provider import (
    Checkout,
    CheckoutState,
    Notice,
    Outcome,
    PaymentProvider,
    ProviderUnavailable,
)

NAME: Final = "sandbox"
# The notices it sends, by type.
OUTCOMES: Final = {
    "checkout.succeeded": Outcome.SUCCEEDED,
    "checkout.declined": Outcome.DECLINED,
}


class SandboxProvider(PaymentProvider):
    name = NAME

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self._url = url.rstrip("/")
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def create_checkout(self, reference: str, amount_cents: int) -> Checkout:
        body = {"reference": reference, "amount_cents": amount_cents}
        answer = await self._call("POST", "/checkouts", body)
        return Checkout(answer["ref"], answer["url"])

    def verify_webhook(self, signature: str | None, body: bytes, now: float) -> Notice:
        signing.verify(self._secret, signature, body, now)
        try:
            event = orjson.loads(body)
            data = event["data"]
            return Notice(
                event_id=str(event["id"]),
                outcome=OUTCOMES[event["type"]],
                checkout_ref=str(data["checkout_ref"]),
                reference=str(data["reference"]),
                amount_cents=int(data["amount_cents"]),
                charge_ref=None if data.get("charge_ref") is None else str(data["charge_ref"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a sandbox notice: {exc!r}") from exc

    async def refund(self, checkout_ref: str, amount_cents: int, key: str) -> str:
        answer = await self._call(
            "POST",
            f"/checkouts/{checkout_ref}/refunds",
            {"amount_cents": amount_cents},
            headers={"Idempotency-Key": key},
        )
        return str(answer["refund_ref"])

    async def query(self, checkout_ref: str) -> CheckoutState:
        answer = await self._call("GET", f"/checkouts/{checkout_ref}")
        return CheckoutState(
            ref=answer["ref"],
            status=answer["status"],
            amount_cents=answer["amount_cents"],
            charge_ref=answer.get("charge_ref"),
            refund_refs=tuple(r["refund_ref"] for r in answer.get("refunds", ())),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        data = None if body is None else orjson.dumps(body)
        sent = {"Content-Type": "application/json", **(headers or {})}
        try:
            async with self._session.request(
                method, self._url + path, data=data, headers=sent
            ) as response:
                raw = await response.read()
                if response.status >= 300:
                    raise ProviderUnavailable(f"sandbox answered {response.status}: {raw[:200]!r}")
                answer: dict[str, Any] = orjson.loads(raw)
                return answer
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise ProviderUnavailable(f"sandbox unreachable: {exc!r}") from exc
