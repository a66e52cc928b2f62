"""Payments (API.md 1.1): checkouts at a provider, the money ledger and refunds.

- `provider`  the port every payment provider implements (checkout, webhook, refund, query)
- `signing`   webhook signatures: HMAC-SHA256 of the raw body, timestamped
- `sandbox`   the adapter of the sandbox provider (`slotrush sandbox-pay`), over HTTP
- `providers` the providers a deployment pays with, from its settings
- `ledger`    the money ledger's transactions: checkouts, charges, refunds owed and confirmed
- `service`   what the HTTP layer calls: start a checkout, receive a notice
- `refunds`   the sweep that asks providers for the refunds owed until each is confirmed

Money follows one rule (invariant 8): a payment is charged once and refunded at most once,
and a booking that ends without being attended keeps none of its patient's money.
"""
