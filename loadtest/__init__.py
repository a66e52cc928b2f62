"""Locust flash-crowd scenarios for slotrush: users, shapes, and the invariant check that runs
at test stop (`locust -f loadtest/locustfile.py`). The API client they use, tally and check
included, is loadtest.client, which bench/ shares."""
