"""slotrush bench: the strategy comparison harness (`slotrush bench`), its open-loop load
generator and reports, the fault suite (`slotrush faults`), the embedded servers of
development, tests and benchmarks, and pytest-benchmark micro-benchmarks."""
