"""The HTTP server of slotrush: aiohttp on uvloop, the contract of API.md."""
