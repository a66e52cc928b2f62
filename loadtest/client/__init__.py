"""The slotrush API client shared by the Locust scenarios and the benchmark harness: tokens,
seeding and admin calls, the client's tally and the invariant check. Plain blocking code that
never imports locust or gevent, so asyncio code may import it too."""
