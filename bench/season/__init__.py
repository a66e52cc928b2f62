"""`slotrush simulate`: a season of a region's hospitals, written to the real ledger.

Hospitals, departments, doctors and their weekly sessions, a patient population with ages,
and the season's bookings with their outcomes (attended, no-show, cancelled) drawn from the
stated rates of `rates.py` by age band and lead time, so the analytics built on them can be
checked against what generated them. Tooling, never on the serving path.
"""
