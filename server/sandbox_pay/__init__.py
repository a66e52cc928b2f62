"""The sandbox payment provider (`slotrush sandbox-pay`): a real HTTP service on its own port
that opens checkouts, completes or declines them on request, sends signed webhooks (at least
once; twice, late or out of order on demand), refunds idempotently, and can be told to fail
or time out, so that payments are tested against a provider as unreliable as real ones.

- `state`     checkouts and refunds, in memory
- `delivery`  webhooks: signed, retried until answered 2xx, with the faults asked for
- `app`       the HTTP API (see its docstring), over both
- `cli`       the `slotrush sandbox-pay` command
"""
