"""CSV answers: RFC 4180 quoting, the formula guard, and what a client sees when the rows
stop coming halfway."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.settings import Settings
from server.csv_export import CsvWriter, guard, stream
from server.metrics import HttpMetrics
from server.middlewares import problems_and_metrics


class Row(msgspec.Struct):
    text: str
    number: int | None


def lines(chunk: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(chunk.decode(), newline="")))


@pytest.mark.parametrize(
    ("cell", "guarded"),
    [
        ("=1+1", "'=1+1"),
        ("+44 20", "'+44 20"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        ("'quoted", "'quoted"),
    ],
)
def test_cells_a_spreadsheet_would_run_get_an_apostrophe(cell: str, guarded: str) -> None:
    assert guard(cell) == guarded


def test_rows_are_rfc_4180_with_a_header_of_the_shapes_fields() -> None:
    writer = CsvWriter(Row)
    assert writer.header == b"text,number\r\n"
    chunk = writer.rows(
        [
            Row("plain", 1),
            Row("a, b", None),
            Row('say "hi"', 2),
            Row("two\nlines", 3),
            Row("=cmd", -4),
        ]
    )
    assert chunk == (b'plain,1\r\n"a, b",\r\n"say ""hi""",2\r\n"two\nlines",3\r\n\'=cmd,\'-4\r\n')
    assert lines(chunk) == [
        ["plain", "1"],
        ["a, b", ""],
        ['say "hi"', "2"],
        ["two\nlines", "3"],
        ["'=cmd", "'-4"],
    ]
    # Each chunk holds only its own rows: the writer keeps nothing between them.
    assert writer.rows([Row("next", 5)]) == b"next,5\r\n"


async def serve_rows(batches: list[list[Row]], fail_after: int | None) -> TestClient:
    async def rows() -> AsyncIterator[list[Row]]:
        for i, batch in enumerate(batches):
            if i == fail_after:
                raise ConnectionRefusedError("the store went away")
            yield batch

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(request, "rows.csv", Row, rows(), lambda row: row)

    # The server's middleware, which answers any failure with a problem: once rows are out,
    # that answer must not be written into the middle of the body.
    app = web.Application(middlewares=[problems_and_metrics(HttpMetrics(), Settings())])
    app.router.add_get("/rows", handler, name="rows")
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_every_batch_is_streamed_and_the_body_ends() -> None:
    client = await serve_rows([[Row("a", 1)], [Row("b", 2), Row("c", 3)]], fail_after=None)
    try:
        response = await client.get("/rows")
        assert response.status == 200
        assert await response.read() == b"text,number\r\na,1\r\nb,2\r\nc,3\r\n"
    finally:
        await client.close()


async def test_a_failure_before_the_first_row_is_an_error_answer() -> None:
    client = await serve_rows([[Row("a", 1)]], fail_after=0)
    try:
        response = await client.get("/rows")
        assert response.status == 503
        assert (await response.json(content_type=None))["code"] == "busy"
    finally:
        await client.close()


async def test_a_failure_after_the_first_row_cuts_the_answer_short() -> None:
    client = await serve_rows([[Row("a", 1)], [Row("b", 2)]], fail_after=1)
    try:
        response = await client.get("/rows")
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    finally:
        await client.close()
