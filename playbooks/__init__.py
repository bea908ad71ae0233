"""Playbooks: which CRM work a risk flag or people signal creates (definitions, engine, actions),
and running that work against the CRM once each (execution.py).

The engine and actions are pure: they import integration.risk, integration.config and the adapters'
protocol only. execution.py adds Redis (its idempotency claims) and integration.store.
"""
