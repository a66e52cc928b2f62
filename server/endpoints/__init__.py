"""The route table: every endpoint module's routes, in the order the router tries them.

A new endpoint goes into the module of its area (or a new module added here): its handler
next to its Route, which carries the OpenAPI operation.
"""

from __future__ import annotations

from typing import Final

from server.endpoints import (
    admin,
    analytics,
    blacklisting,
    browsing,
    his_sync,
    hospitals,
    lifecycle,
    live,
    notifications,
    operations,
    pages,
    patients,
    payments,
    profiles,
    records,
    waiting_room,
)
from server.route import Route

# The hottest route (booking) first: the router tries routes sharing a prefix in order.
ROUTES: Final[tuple[Route, ...]] = (
    *patients.ROUTES,
    *waiting_room.ROUTES,
    *admin.ROUTES,
    *hospitals.ROUTES,
    *lifecycle.ROUTES,
    *his_sync.ROUTES,
    *payments.ROUTES,
    *blacklisting.ROUTES,
    *notifications.ROUTES,
    *profiles.ROUTES,
    *records.ROUTES,
    *live.ROUTES,
    *analytics.ROUTES,
    *browsing.ROUTES,
    *operations.ROUTES,
    *pages.ROUTES,
)
