"""What the outside world sends (usage, Segment, job changes, CRM changes) parsed into plain facts,
and the account state the rules read (accounts.py), built from those facts.

Imports integration.config and integration.errors only: no Redis, no Flask, no CRM.
"""
