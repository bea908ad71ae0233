"""RQ jobs and their context: evaluate accounts, CRM changes, queues, cron, failed jobs.

The composition root for workers: imports store, risk, playbooks and adapters; nothing imports it
but the CLI (and the web edge, for the queues and the shared config loading).
"""
