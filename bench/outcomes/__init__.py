"""`slotrush report`: a hospital's no-show and cancellation rates as Markdown and PNG plots,
by age band, department, weekday and lead time, from the analytics endpoint or the ledger.
Tooling, never on the serving path."""
