"""What the outside world sends (usage, Segment, job changes, CRM changes), parsed into plain facts.

Imports integration.config and integration.errors only: no Redis, no Flask, no CRM.
"""
