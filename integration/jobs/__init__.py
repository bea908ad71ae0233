"""RQ jobs and their context: evaluate accounts, people and CRM changes, queues, cron, failed jobs.

The composition root for workers: imports store, risk, playbooks and adapters; nothing imports it
but the CLI (and the web edge, for the queues and the shared config loading).
"""

from __future__ import annotations

import importlib

# Until the next release: jobs queued (or failed, or waiting on a retry) before the jobs moved
# into this package name `integration.jobs.<function>`. RQ resolves them here; the web edge,
# which imports integration.jobs.queues, never loads the evaluation code through this.
_MOVED_TO_EVALUATE = frozenset(
    {
        "evaluate_account",
        "evaluate_dirty_accounts",
        "evaluate_all_accounts",
        "sweep_accounts",
        "process_job_change",
    }
)


def __getattr__(name: str) -> object:
    if name in _MOVED_TO_EVALUATE:
        return getattr(importlib.import_module("integration.jobs.evaluate"), name)
    msg = f"module 'integration.jobs' has no attribute {name!r}"
    raise AttributeError(msg)
