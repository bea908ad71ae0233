"""The HTTP edge: verify, validate, store durably, answer fast. No business rules here."""
