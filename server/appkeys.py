"""Typed keys of the application's state, shared by the app factory and the handlers."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from core.booking import BookingService
from core.his_sync.service import HisSync
from core.hospitals import Hospitals
from core.inventory import Inventory, InventoryFactory
from core.operations import HospitalOperations
from core.payments.service import Payments
from core.ratelimit import RateLimiter
from core.settings import Settings
from core.stores import Stores
from core.tokens import TokenVerifier
from core.waiting_room import OpenRooms, WaitingRooms
from server.admission import Admission
from server.fastpath import SoldOutMemory
from server.live_feeds import LiveFeeds
from server.snapshots import SharedSnapshots
from server.workers import Workers

SETTINGS = web.AppKey("settings", Settings)
STRATEGY_CLASS: web.AppKey[InventoryFactory] = web.AppKey("strategy_class")
STORES = web.AppKey("stores", Stores)
STRATEGY = web.AppKey("strategy", Inventory)
SERVICE = web.AppKey("service", BookingService)
HOSPITALS = web.AppKey("hospitals", Hospitals)
OPERATIONS = web.AppKey("operations", HospitalOperations)
HIS_SYNC = web.AppKey("his_sync", HisSync)
PAYMENTS = web.AppKey("payments", Payments)
VERIFIER = web.AppKey("verifier", TokenVerifier)
SNAPSHOTS = web.AppKey("snapshots", SharedSnapshots)
LIVE = web.AppKey("live", LiveFeeds)
SOLD_OUT = web.AppKey("sold_out", SoldOutMemory)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
OPENAPI_JSON = web.AppKey("openapi_json", bytes)
ADMISSION = web.AppKey("admission", Admission)
WORKERS = web.AppKey("workers", Workers)
ROOMS = web.AppKey("rooms", WaitingRooms)
OPEN_ROOMS = web.AppKey("open_rooms", OpenRooms)
