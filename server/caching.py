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
# The oldest answer a request's `Cache-Control: max-age` may ask for from a shared snapshot.
_OLDEST_ACCEPTED_SECONDS: Final = 60


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
    return encoded_json(request, *encode(shape), caching)


def encode(shape: msgspec.Struct) -> tuple[bytes, str]:
    """The JSON body of `shape` and its ETag."""
    body = dumps(shape)
    return body, etag_of(body)


def encoded_json(request: web.Request, body: bytes, etag: str, caching: Caching) -> web.Response:
    """200 with an encoded JSON `body`, or 304 if the request's If-None-Match names `etag`."""
    headers = {hdrs.ETAG: etag, hdrs.CACHE_CONTROL: caching.value}
    if caching is not Caching.PUBLIC:
        # A different token may see a different answer at the same address.
        headers[hdrs.VARY] = hdrs.AUTHORIZATION
    if names_etag(request.headers.get(hdrs.IF_NONE_MATCH), etag):
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = _JSON
    return web.Response(body=body, headers=headers)


def accepted_age(request: web.Request) -> float:
    """How old an answer the request accepts (RFC 9111 5.2.1.1, `Cache-Control: max-age=N`),
    at most a minute; 0 (a fresh one) without that directive or with `no-cache`."""
    directives = [
        part.strip().lower() for part in request.headers.get(hdrs.CACHE_CONTROL, "").split(",")
    ]
    if "no-cache" in directives:
        return 0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name == "max-age" and value.isdigit():
            return min(int(value), _OLDEST_ACCEPTED_SECONDS)
    return 0


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
