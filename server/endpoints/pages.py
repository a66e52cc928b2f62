"""The front end (issue 14): the patient booking page at /book, the staff console at
/console, and the modules and styles they load from /web/. Both pages are built on the
public API alone: they hold no secret and get no route of their own beyond these files.

Files are revalidated on every load (`no-cache` with a strong ETag): a deployment's new
front end is seen at once, and an unchanged one costs a 304. The policy headers keep the
pages to their own origin's scripts and styles, and out of other sites' frames.
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from server.assets import Asset, load_assets
from server.caching import names_etag
from server.route import Access, Route

_ASSETS: Final = load_assets()
_POLICY: Final = {
    hdrs.CACHE_CONTROL: "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


def _send(request: web.Request, asset: Asset) -> web.Response:
    headers = {**_POLICY, hdrs.ETAG: asset.etag}
    if names_etag(request.headers.get(hdrs.IF_NONE_MATCH), asset.etag):
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = asset.content_type
    return web.Response(body=asset.body, headers=headers)


async def book_page(request: web.Request) -> web.Response:
    return _send(request, _ASSETS["book.html"])


async def console_page(request: web.Request) -> web.Response:
    return _send(request, _ASSETS["console.html"])


async def asset(request: web.Request) -> web.Response:
    found = _ASSETS.get(request.match_info["asset"])
    if found is None or found.content_type.startswith("text/html"):
        raise web.HTTPNotFound()
    return _send(request, found)


def _page(summary: str) -> dict[str, object]:
    return {
        "tags": ["pages"],
        "summary": summary,
        "responses": {
            "200": {
                "description": "The page (HTML); it loads its modules from /web/.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            "304": {"description": "Not modified: If-None-Match named the current ETag."},
        },
    }


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "GET",
        "/book",
        book_page,
        "bookPage",
        _page("The patient booking page: browse, book, pay, see and cancel bookings."),
        access=Access.PUBLIC,
    ),
    Route(
        "GET",
        "/console",
        console_page,
        "consolePage",
        _page("The staff console of one hospital (the staff token decides which)."),
        access=Access.PUBLIC,
    ),
    Route(
        "GET",
        "/web/{asset}",
        asset,
        "pageAsset",
        {
            "tags": ["pages"],
            "summary": "A module, stylesheet or image of the pages.",
            "responses": {
                "200": {
                    "description": "The file, with its content type and a strong ETag.",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                        "image/svg+xml": {"schema": {"type": "string"}},
                    },
                },
                "304": {"description": "Not modified: If-None-Match named the current ETag."},
                "404": {"description": "No such file (problem not_found)."},
            },
        },
        access=Access.PUBLIC,
    ),
)
