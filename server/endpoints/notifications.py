"""A hospital's notifications (API.md 1.1, Hospital operations): the outbox as its staff
read it (`?status=dead`: the dead letters), sending a dead one again, and the secret its
webhooks are signed with. The platform or the hospital's own administrator (Access.STAFF);
the service is core.notifications.staff.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web
from msgspec import UNSET

from core.domain import Code
from core.notifications import staff
from core.notifications.staff import NotificationRecord
from server import auth
from server import validation as parse
from server.appkeys import STORES
from server.caching import Caching, cached_json
from server.cursors import page_request
from server.encoding import json_response
from server.openapi import ADMIN, IF_NONE_MATCH, errors, ok, ok_cached, query_parameters
from server.route import Access, Route
from server.shapes import blacklisting as shapes

NOTIFICATIONS_PATH: Final = "/v1/admin/hospitals/{hospital_id}/notifications"
SECRET_PATH: Final = "/v1/admin/hospitals/{hospital_id}/webhook-secret"


async def list_notifications(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    query = parse.query(request.query, shapes.NotificationQuery)
    paging = page_request("listNotifications", query, int)
    status = None if query.status is UNSET else query.status
    page = await staff.page(
        request.app[STORES].pg, hospital_id, status, after=paging.after, limit=paging.limit
    )
    answer = shapes.NotificationPage(
        notifications=[_out(record) for record in page.items],
        next_cursor=paging.next_cursor(page),
    )
    return cached_json(request, answer, Caching.PERSONAL)


def _out(record: NotificationRecord) -> shapes.Notification:
    return shapes.Notification(
        id=str(record.id),
        dedupe_id=record.dedupe_id,
        kind=record.kind,  # type: ignore[arg-type]
        status=record.status,  # type: ignore[arg-type]
        attempts=record.attempts,
        next_attempt_at=record.next_attempt_at,
        last_error=record.last_error,
        created_at=record.created_at,
        delivered_at=record.delivered_at,
        data=record.data,
    )


async def retry_notification(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    notification_id = parse.path_id(
        request.match_info["notification_id"], Code.NOTIFICATION_NOT_FOUND
    )
    await staff.retry(request.app[STORES].pg, hospital_id, notification_id)
    return web.Response(status=202)


async def get_secret(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    secret = await staff.secret(request.app[STORES].pg, hospital_id)
    return cached_json(
        request, shapes.WebhookSecret(hospital_id=hospital_id, secret=secret), Caching.PERSONAL
    )


async def rotate_secret(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    secret = await staff.rotate_secret(request.app[STORES].pg, hospital_id)
    return json_response(shapes.WebhookSecret(hospital_id=hospital_id, secret=secret))


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "GET",
        NOTIFICATIONS_PATH,
        list_notifications,
        "listNotifications",
        {
            "tags": ["admin"],
            "summary": "A hospital's notifications as written; ?status=dead: the dead letters.",
            "parameters": [*query_parameters(shapes.NotificationQuery), IF_NONE_MATCH],
            "responses": {
                **ok_cached("A page of notifications", shapes.NotificationPage),
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "POST",
        NOTIFICATIONS_PATH + "/{notification_id}/retry",
        retry_notification,
        "retryNotification",
        {
            "tags": ["admin"],
            "summary": "Send an undelivered notification now; a dead one with fresh attempts.",
            "description": "No body is read.",
            "responses": {
                **ok(202, "Due again now", None),
                **errors(Code.INVALID_REQUEST, Code.NOTIFICATION_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "GET",
        SECRET_PATH,
        get_secret,
        "getWebhookSecret",
        {
            "tags": ["admin"],
            "summary": "The key of the hospital's webhook signatures (HMAC-SHA256).",
            "parameters": [IF_NONE_MATCH],
            "responses": {
                **ok_cached("The secret", shapes.WebhookSecret),
                **errors(Code.INVALID_REQUEST, Code.HOSPITAL_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "POST",
        SECRET_PATH,
        rotate_secret,
        "rotateWebhookSecret",
        {
            "tags": ["admin"],
            "summary": "A new webhook secret; every attempt from now on is signed with it.",
            "description": "No body is read.",
            "responses": {
                **ok(200, "The new secret", shapes.WebhookSecret),
                **errors(Code.INVALID_REQUEST, Code.HOSPITAL_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
