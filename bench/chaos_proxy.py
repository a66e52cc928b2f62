"""A TCP proxy that loses a fraction of responses after the request has reached the server.

It relays bytes both ways and watches whose turn it is: the first bytes the upstream sends
after the client spoke begin a response. For a chosen fraction of responses it closes both
connections instead of relaying them, so the server has done the work (a response exists)
and the client never learns the outcome: the case an Idempotency-Key exists for. While `cut`
is set it loses requests instead (a partition): nothing reaches the server, connections close.

Turn taking needs no parsing, so the same proxy sits in front of the HTTP server (a lost 201)
and in front of Redis (a lost reply to the take script). Clients that send one request at a
time per connection (aiohttp, redis-py) get one decision per response; a pipelined batch is
kept or lost as a whole.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
from dataclasses import dataclass

_CHUNK = 65536


@dataclass
class ProxyStats:
    connections: int = 0
    responses: int = 0
    dropped: int = 0


class _Turn:
    """Whether the upstream's next bytes begin a new response."""

    __slots__ = ("response_due",)

    def __init__(self) -> None:
        self.response_due = False


class ChaosProxy:
    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        drop_rate: float,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"drop_rate must be within 0..1, not {drop_rate}")
        self.upstream = (upstream_host, upstream_port)
        # Changed at run time to end the fault, e.g. before the checks run.
        self.drop_rate = drop_rate
        self.cut = False
        self.stats = ProxyStats()
        self._listen = (host, port)
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy has not been started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, *self._listen)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> ChaosProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.stats.connections += 1
        upstream_out: asyncio.StreamWriter | None = None
        try:
            if self.cut:
                return
            upstream_in, upstream_out = await asyncio.open_connection(*self.upstream)
            turn = _Turn()
            requests = asyncio.create_task(self._relay_requests(client_in, upstream_out, turn))
            try:
                await self._relay_responses(upstream_in, client_out, turn)
            finally:
                requests.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await requests
        except OSError:
            pass  # a reset by either side ends this connection like a close would
        finally:
            self._handlers.discard(task)
            for writer in (client_out, upstream_out):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()

    async def _relay_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, turn: _Turn
    ) -> None:
        try:
            while chunk := await reader.read(_CHUNK):
                if self.cut:
                    writer.close()
                    return
                # Set before forwarding: the server cannot answer bytes it has not received.
                turn.response_due = True
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            # A reset on either side: closing upstream ends the response relay, and so the
            # connection.
            writer.close()

    async def _relay_responses(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, turn: _Turn
    ) -> None:
        while chunk := await reader.read(_CHUNK):
            if turn.response_due:
                turn.response_due = False
                self.stats.responses += 1
                if self._random.random() < self.drop_rate:
                    self.stats.dropped += 1
                    return
            writer.write(chunk)
            await writer.drain()


async def _serve(args: argparse.Namespace) -> None:
    proxy = ChaosProxy(
        args.upstream_host,
        args.upstream_port,
        drop_rate=args.drop_rate,
        seed=args.seed,
        port=args.port,
    )
    async with proxy:
        print(f"chaos proxy on 127.0.0.1:{proxy.port} -> {args.upstream_host}:{args.upstream_port}")
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream_host")
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("--port", type=int, default=0, help="listen port (default: any free)")
    parser.add_argument("--drop-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=None)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
