"""The application factory: settings in, a ready-to-run aiohttp Application out.

Nothing here does I/O: stores, the strategy, the job runner (unless settings say not), the
booking service and the sold-out memory are opened in one cleanup context each, in that
order, when the application starts, and closed in reverse when it stops (after in-flight
requests have finished).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

from aiohttp import web

from core.booking import BookingService
from core.his_sync.service import HisSync
from core.inventory import InventoryFactory
from core.operations import HospitalOperations
from core.payments.providers import Providers
from core.payments.service import Payments
from core.ratelimit import RateLimiter
from core.settings import Settings
from core.stores import open_stores
from core.tokens import token_verifier
from core.waiting_room import OpenRooms, RoomTickets, WaitingRooms
from server.admission import Admission
from server.appkeys import (
    ADMISSION,
    HIS_SYNC,
    HOSPITALS,
    LIVE,
    METRICS_REGISTRY,
    OPEN_ROOMS,
    OPENAPI_JSON,
    OPERATIONS,
    PAYMENTS,
    RATE_LIMITER,
    ROOMS,
    SERVICE,
    SETTINGS,
    SNAPSHOTS,
    SOLD_OUT,
    STORES,
    STRATEGY,
    STRATEGY_CLASS,
    VERIFIER,
    WORKERS,
)
from server.cors import cors, parse_origins
from server.courier import WebhookCourier
from server.encoding import dumps
from server.endpoints import ROUTES
from server.fastpath import SoldOutMemory
from server.live_feeds import LiveFeeds
from server.metrics import HttpMetrics, exposition_registry
from server.middlewares import problems_and_metrics
from server.openapi import build_document
from server.snapshots import SharedSnapshots
from server.validation import MAX_BODY_BYTES
from server.workers import ONE_PROCESS
from strategies import strategy_class

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def create_app(settings: Settings, *, strategy: InventoryFactory | None = None) -> web.Application:
    """An application serving API.md. `settings` must name both stores and the token key
    (the secret, or a public key or JWKS file, read here); `strategy` defaults to
    `settings.strategy` looked up in the registry."""
    redis_url, database_url = settings.redis_url, settings.database_url
    if redis_url is None or database_url is None:
        raise ValueError("create_app needs redis_url and database_url")
    middlewares = [problems_and_metrics(HttpMetrics(), settings)]
    origins = parse_origins(settings.cors_origins)
    if origins:
        # Outermost, so that its headers reach every answer, errors included.
        middlewares.insert(0, cors(origins))
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[SETTINGS] = settings
    app[STRATEGY_CLASS] = strategy or strategy_class(settings.strategy)
    app[VERIFIER] = token_verifier(settings)
    app[METRICS_REGISTRY] = exposition_registry()
    app[ADMISSION] = Admission(settings.bookings_in_flight, settings.booking_queue)
    # One process unless the runner's supervisor says how many workers serve.
    app[WORKERS] = ONE_PROCESS
    app[SNAPSHOTS] = SharedSnapshots()
    app[LIVE] = LiveFeeds()
    app.on_shutdown.append(_end_live_streams)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
    app[OPENAPI_JSON] = dumps(build_document(ROUTES, served_routes(app)))
    app.cleanup_ctx.extend(
        [_stores(redis_url, database_url), _strategy, _jobs, _service, _sold_out_memory]
    )
    return app


async def _end_live_streams(app: web.Application) -> None:
    # Streams would otherwise hold the shutdown until its timeout.
    app[LIVE].stop()


def served_routes(app: web.Application) -> Iterator[tuple[str, str, str]]:
    """(method, path template, name) of every route the router serves."""
    for route in app.router.routes():
        if route.resource is None or route.name is None:
            raise RuntimeError(f"{route!r} lacks a path or a name: add every route with both")
        yield route.method, route.resource.canonical, route.name


def _stores(redis_url: str, database_url: str) -> CleanupContext:
    async def stores_open(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        async with open_stores(
            settings, redis_url=redis_url, database_url=database_url, migrate_schema=True
        ) as stores:
            app[STORES] = stores
            app[RATE_LIMITER] = RateLimiter(
                stores.redis,
                prefix=settings.redis_prefix,
                per_patient=settings.rate_limit_patient,
                per_address=settings.rate_limit_address,
            )
            secret = settings.waiting_room_secret or settings.secret
            tickets = None if secret is None else RoomTickets(secret)
            app[ROOMS] = WaitingRooms(stores.redis, settings.redis_prefix, tickets)
            app[OPEN_ROOMS] = OpenRooms(app[ROOMS])
            yield

    return stores_open


async def _strategy(app: web.Application) -> AsyncIterator[None]:
    strategy = app[STRATEGY_CLASS](app[STORES])
    await strategy.start()
    app[STRATEGY] = strategy
    try:
        yield
    finally:
        await strategy.close()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    if not app[SETTINGS].run_jobs:
        yield
        return
    # Here, not at the top: pgqueuer and the pydantic it brings are about 13 MiB of a
    # process, which `serve --no-jobs` (jobs left to `slotrush worker`) then never holds.
    from core.jobs.runner import JobRunner

    async with WebhookCourier(app[SETTINGS].webhook_timeout) as courier:
        runner = JobRunner(app[STORES], app[STRATEGY], courier)
        runner.start()
        try:
            yield
        finally:
            await runner.close()


async def _service(app: web.Application) -> AsyncIterator[None]:
    service = BookingService(app[STRATEGY], app[STORES].ledger)
    app[SERVICE] = service
    app[HOSPITALS] = service.hospitals
    app[OPERATIONS] = HospitalOperations(service)
    app[HIS_SYNC] = HisSync(service)
    providers = Providers.from_settings(app[SETTINGS])
    app[PAYMENTS] = Payments(app[STORES].pg, providers)
    try:
        yield
    finally:
        await providers.close()


async def _sold_out_memory(app: web.Application) -> AsyncIterator[None]:
    memory = SoldOutMemory(app[SETTINGS].sold_out_ttl, app[SERVICE].still_sold_out)
    app[SOLD_OUT] = memory
    try:
        yield
    finally:
        await memory.close()
