"""Locust flash-crowd scenarios for slotrush: users, shapes, the client tally and the
invariant check that runs at test stop (`locust -f loadtest/locustfile.py`)."""
