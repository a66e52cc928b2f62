"""Notifications to a hospital's `webhook_url` (API.md 1.1, Hospital operations).

Written to an outbox (the `notifications` table) in the transaction of the change that owes
them, so a notification exists exactly when its change committed; delivered at least once,
signed, with retries, by the deliver_notifications job; what keeps failing is dead, for the
hospital's staff to read and send again.

- `outbox`    writing them: booking events, a blacklisting, a refund (for payments)
- `signing`   the `Slotrush-Signature` header, and how a receiver checks it
- `delivery`  claiming due ones, posting them through a Courier, retries and dead letters
- `reminders` the day-before reminders, swept by a job

"confirmed" is written by a trigger of the ledger (migration 009), since every strategy's
booking statement (and a payment) makes bookings booked.
"""

from core.notifications.outbox import Kind, blacklisted, bookings, refunded

__all__ = ["Kind", "blacklisted", "bookings", "refunded"]
