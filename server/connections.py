"""Connections: how long a client may take over a request head, and how a request that
breaks HTTP is answered. A small subclass of aiohttp's protocol, installed by a runner.

aiohttp has no header-read timeout of its own. Its keep-alive timer is armed when a
connection opens and after each answer, and closes the connection only while the protocol
waits for a complete request head; bytes of a head trickling in do not reset it. It bounds
idle time and head time together, so on its own a slow head could hold a connection as long
as an idle keep-alive connection may live (longer than any proxy's idle timeout, a minute or
more). Here a connection has two clocks: `idle_timeout` (aiohttp's keep-alive timer) while
it waits for a request, and `header_timeout` for a request head, from the connection's start
for the first one and from the first byte that arrives while the connection waits for the
others. A slow body is the request deadline's business (server.middlewares).

aiohttp answers a request its parser refuses (a header over 8 KiB, a bad character, a bad
request line, bad chunking) by itself, in text/plain quoting the input, without passing
through the application's middlewares: `handle_error` answers problem+json with a stable
code instead, and nothing of the input.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestHandler

from server.metrics import CONNECTIONS_CLOSED, HTTP_REQUESTS
from server.problems import HttpCode, bad_request_code, problem_response

log = logging.getLogger("slotrush.server")

_SLOW_HEAD = CONNECTIONS_CLOSED.labels("header_timeout")
# After an answer that leaves part of a body unread, what the client still sends is read and
# dropped for this long before closing (closing on unread bytes resets the connection, which
# can destroy the answer on its way); aiohttp's own 10 s would let a slow body hold on.
_LINGER_SECONDS = 2.0
# The route label of answers given before any route: the parser's refusals.
_UNPARSED = "unparsed"


class GuardedRequestHandler(RequestHandler):
    __slots__ = ("_head_timer", "_header_timeout")

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # The first request's head is timed from the connection's start.
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count == parsed:
            if self._waiting_for_head():
                self._start_head_timer()
            return
        self._stop_head_timer()
        request = self._current_request
        if request is not None and not request.content.is_eof():
            # Something was parsed while a body is still under way: that can only be the
            # parser's error in the body (bad chunking), which aiohttp queues as the next
            # request; the handler reading this body must hear of it now, and aiohttp must not
            # linger reading the rest of a body that can never end.
            request.content.set_exception(BadHttpMessage("the body broke HTTP framing"))
            self._lingering_time = 0.0

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # Part of an answer is out already: nothing but closing can follow.
            raise ConnectionError("an answer was under way when the request failed")
        if status == 400:
            code = bad_request_code(exc) if exc is not None else HttpCode.INVALID_REQUEST
            log.info("refused a request from %s: %s", request.remote, type(exc).__name__)
        else:
            code = HttpCode.INTERNAL_ERROR
            log.error("request from %s failed", request.remote, exc_info=exc)
        response = problem_response(code)
        response.force_close()
        HTTP_REQUESTS.labels(_UNPARSED, "other", str(response.status)).inc()
        return response

    def _waiting_for_head(self) -> bool:
        # start() awaits this future while no complete request head has been parsed.
        return self._waiter is not None and not self._waiter.done()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._waiting_for_head():
            _SLOW_HEAD.inc()
            self.force_close()

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(self._header_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


class GuardedServer(web.Server):
    """A web.Server whose connections are GuardedRequestHandlers."""

    def __init__(
        self,
        handler: Any,
        *,
        loop: asyncio.AbstractEventLoop,
        request_factory: Any,
        handler_cancellation: bool,
        **handler_args: Any,
    ) -> None:
        super().__init__(
            handler,
            loop=loop,
            request_factory=request_factory,
            handler_cancellation=handler_cancellation,
            **handler_args,
        )
        self._guarded_loop = loop
        self._handler_args = handler_args

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, loop=self._guarded_loop, **self._handler_args)


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose connections have both clocks and answer parser errors as
    problem+json, and whose handlers are cancelled when their client goes away."""

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout: float,
        idle_timeout: float,
        shutdown_timeout: float,
        **handler_args: Any,
    ) -> None:
        super().__init__(app, shutdown_timeout=shutdown_timeout)
        self._handler_args = {
            "header_timeout": header_timeout,
            "keepalive_timeout": idle_timeout,
            "lingering_time": _LINGER_SECONDS,
            **handler_args,
        }

    async def _make_server(self) -> web.Server:
        # The base class starts and freezes the application and makes its plain Server; ours
        # takes that one's request handler and factory, and nothing else of it.
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            loop=asyncio.get_running_loop(),
            request_factory=plain.request_factory,
            handler_cancellation=True,
            **self._handler_args,
        )
