"""Structured access logs: one JSON object per request. Off unless `--access-log`."""

from __future__ import annotations

import logging

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        entry = {
            "remote": request.remote,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(time * 1000, 3),
        }
        self.logger.info(orjson.dumps(entry).decode())

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
