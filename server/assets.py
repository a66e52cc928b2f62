"""The front end's files (server/web/): read once when the server starts, each with its
content type and a strong ETag, so a page load costs a dictionary lookup and, when the
browser already has the file, a 304 without a body.

The pages are plain HTML, CSS and JavaScript modules, served as they are written: there is
no build step, and an installed wheel carries them as package data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from server.caching import etag_of

FOLDER: Final = Path(__file__).with_name("web")
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(folder: Path = FOLDER) -> dict[str, Asset]:
    """Every servable file of `folder` by name."""
    return {
        path.name: _asset(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in _TYPES
    }


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    return Asset(body, _TYPES[path.suffix], etag_of(body))
