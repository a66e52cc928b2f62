"""slotrush core: domain types, errors, settings, stores and the ledger. No HTTP here."""
