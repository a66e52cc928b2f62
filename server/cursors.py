"""Opaque page cursors (API.md 1.1: every list is cursor-paginated).

A cursor is base64url, without padding, of a 4-byte check followed by the JSON `[list, key]`:
`list` is a digest of the route and the filters of the query it paginates, `key` the key of
the last row a page covered. A cursor that does not decode, fails its check, was made for
another list or query, or carries a key of the wrong type is 400 invalid_request, so an
edited or truncated cursor is refused rather than silently starting somewhere else. A forged
one gains nothing: it is only a position in a list its caller may read anyway, and every
query stays keyed by the caller's scope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import msgspec
import orjson

from core.paging import Page
from server import shapes
from server.validation import filters_of, invalid

_CHECK_BYTES: Final = 4

K = TypeVar("K", int, str)


@dataclass(frozen=True, slots=True)
class PageRequest(Generic[K]):
    """Where a page starts (`after`, None: at the beginning) and how long it is."""

    list_tag: str
    after: K | None
    limit: int

    def next_cursor(self, page: Page[Any, K]) -> str | None:
        return None if page.next_key is None else encode(self.list_tag, page.next_key)


def page_request(route: str, query: shapes.PageQuery, key_type: type[K]) -> PageRequest[K]:
    """The page `query` asks for of the list `route` answers, its cursor checked."""
    filters = sorted(map(str, filters_of(query).items()))
    tag = hashlib.blake2b(orjson.dumps([route, filters]), digest_size=8).hexdigest()
    cursor = query.cursor
    after = None if cursor is msgspec.UNSET else decode(cursor, tag, key_type)
    return PageRequest(tag, after, query.limit)


def encode(list_tag: str, key: int | str) -> str:
    payload = orjson.dumps([list_tag, key])
    raw = _check(payload) + payload
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str, list_tag: str, key_type: type[K]) -> K:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _bad() from None
    check, payload = raw[:_CHECK_BYTES], raw[_CHECK_BYTES:]
    if check != _check(payload):
        raise _bad()
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise _bad() from None
    if not (isinstance(value, list) and len(value) == 2 and value[0] == list_tag):
        raise _bad()
    key = value[1]
    if type(key) is not key_type or (type(key) is int and not 0 < key <= shapes.MAX_BIGINT):
        raise _bad()
    typed: K = key
    return typed


def _check(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_CHECK_BYTES).digest()


def _bad() -> Exception:
    return invalid("cursor is not one this list gave out: pass next_cursor exactly as received")
