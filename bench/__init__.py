"""slotrush bench: the strategy comparison harness (`slotrush bench`), its open-loop load
generator, reports, and pytest-benchmark micro-benchmarks."""
