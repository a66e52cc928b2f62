"""The Courier of core.notifications.delivery over aiohttp's client: one session (its
connection pool) per process, opened and closed with the job runner."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import aiohttp

from core.notifications.delivery import DeliveryFailed


class WebhookCourier:
    def __init__(self, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookCourier:
        # Not the server's proxy settings or cookies: a webhook goes where the hospital said.
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if self._session is None:
            raise RuntimeError("WebhookCourier is used outside `async with`")
        try:
            # A redirect is the receiver's answer, not a second address to post to.
            async with self._session.post(
                url, data=body, headers=dict(headers), allow_redirects=False
            ) as answer:
                return answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(repr(exc)) from exc
