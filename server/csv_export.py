"""CSV answers: any number of rows streamed in chunks, in constant memory.

Columns are the fields of a response shape, in order, with the text its JSON would carry.
Quoting is RFC 4180's (CRLF line ends; a field with a comma, quote or line break is quoted,
quotes doubled). A cell that a spreadsheet would run as a formula (starting with = + - @,
tab or carriage return) gets a leading apostrophe: the export is opened by hospital staff,
and a booking's ids come from patients and other systems.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Final, TypeVar

import msgspec
from aiohttp import hdrs, web

CSV_CONTENT_TYPE: Final = "text/csv"
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")

log = logging.getLogger("slotrush.server")

T = TypeVar("T")


def wants_csv(request: web.Request) -> bool:
    """Whether the Accept header names text/csv (with a quality above 0)."""
    for media_range in request.headers.get(hdrs.ACCEPT, "").split(","):
        media_type, *parameters = media_range.split(";")
        if media_type.strip().lower() == CSV_CONTENT_TYPE and _quality(parameters) > 0:
            return True
    return False


def _quality(parameters: Iterable[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def guard(cell: str) -> str:
    """The cell as text a spreadsheet shows rather than runs."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _text(value: object) -> str:
    return "" if value is None else guard(str(value))


class CsvWriter:
    """Rows of one response shape as CSV bytes, a chunk at a time."""

    def __init__(self, shape: type[msgspec.Struct]) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")
        self.header = self._encode([shape.__struct_fields__])

    def rows(self, shapes: Iterable[msgspec.Struct]) -> bytes:
        # to_builtins: dates, times and enums as their JSON text.
        return self._encode(
            [_text(v) for v in msgspec.to_builtins(msgspec.structs.astuple(s))] for s in shapes
        )

    def _encode(self, rows: Iterable[Sequence[str]]) -> bytes:
        self._writer.writerows(rows)
        chunk = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        return chunk


async def stream(
    request: web.Request,
    filename: str,
    shape: type[msgspec.Struct],
    batches: AsyncIterator[list[T]],
    to_shape: Callable[[T], msgspec.Struct],
) -> web.StreamResponse:
    """Answer every batch as CSV rows of `shape`, chunked.

    The first batch is read before the status line goes out, so a store that is down is still
    answered as a problem. After that a failure can only cut the answer short: the connection
    is aborted rather than the chunked body ended, so no client takes a truncated file for a
    whole one.
    """
    first = await anext(batches, None)
    writer = CsvWriter(shape)
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: f"{CSV_CONTENT_TYPE}; charset=utf-8; header=present",
            hdrs.CONTENT_DISPOSITION: f'attachment; filename="{filename}"',
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        await response.write(writer.header)
        if first is not None:
            await response.write(writer.rows(to_shape(item) for item in first))
            async for batch in batches:
                await response.write(writer.rows(to_shape(item) for item in batch))
    except ConnectionResetError:
        log.info("%s %s: the client left during the export", request.method, request.path)
        return response
    except BaseException:
        if request.transport is not None:
            request.transport.abort()
        raise
    await response.write_eof()
    return response
