"""Conditional GETs, so a crowd refreshing a page costs little: every list and detail GET
answers with a strong `ETag` (a hash of its body) and a `Cache-Control` fitting who may see
it, and a request whose `If-None-Match` names the current ETag gets 304 without a body."""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from typing import Final

import msgspec
from aiohttp import hdrs, web

from server.encoding import dumps

_JSON: Final = "application/json"


class Caching(StrEnum):
    """The Cache-Control of an answer, by who may see it."""

    # Anyone's (no token): shared caches may keep it for a few seconds.
    PUBLIC = "public, max-age=5"
    # Read with a token but the same for everyone alike (schedules, whose `remaining` may
    # lag a second anyway): the browser may keep it for a second.
    TOKEN = "private, max-age=1"
    # One patient's or one administrator's own: kept by the browser, asked again every time.
    PERSONAL = "private, no-cache"


def cached_json(request: web.Request, shape: msgspec.Struct, caching: Caching) -> web.Response:
    """200 with `shape` as JSON, or 304 if the request's If-None-Match names its ETag."""
    body = dumps(shape)
    etag = etag_of(body)
    headers = {hdrs.ETAG: etag, hdrs.CACHE_CONTROL: caching.value}
    if caching is not Caching.PUBLIC:
        # A different token may see a different answer at the same address.
        headers[hdrs.VARY] = hdrs.AUTHORIZATION
    if names_etag(request.headers.get(hdrs.IF_NONE_MATCH), etag):
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = _JSON
    return web.Response(body=body, headers=headers)


def etag_of(body: bytes) -> str:
    digest = hashlib.blake2b(body, digest_size=16).digest()
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode() + '"'


def names_etag(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: `*`, or any listed tag equal to ours under weak comparison."""
    if if_none_match is None:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
