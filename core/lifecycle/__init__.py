"""The registration lifecycle of API.md 1.1: the transitions of a booking after it is made.

```
pending_payment --paid (payments, to come)--> booked --check-in--> attended
 |  |                                         |  '--day-end--> no_show
 |  '--hold lapsed--> expired                 |
 '--cancelled by the patient, or by the       |
    hospital suspending the schedule <--------'
```

Each transition is a function of one module here that runs one ledger transaction: it locks
the rows it changes, changes a status only from the state it leaves (so whatever runs twice,
or concurrently, happens once per booking: invariant 10), frees the numbers of the holds it
ends through the inventory's `numbers_freeing` (inside) and `numbers_freed` (after the
commit), and ends with the calls of `effects`, where what follows a transition is recorded
in the same transaction.

- `effects`       what follows a transition (refunds, breaches, notifications): the hooks
- `releasing`     ending holds: the inventory's release hooks and the effects, in order
- `cancellation`  a patient cancels (inside a strategy's cancel transaction)
- `expiry`        unpaid holds lapse (a sweep)
- `suspension`    the hospital stops a session: closed, its bookings cancelled by it
- `checkin`       a verification code at the counter, brute force refused
- `settlement`    day-end: what is still booked becomes a no-show
"""
