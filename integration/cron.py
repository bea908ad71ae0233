"""Periodic jobs for `rq cron integration.cron` (RQ's own scheduler, no home-made one).

The web app queues an evaluation when an account first becomes dirty; this sweep catches the rare
delivery whose usage was stored but whose evaluation could not be queued (Redis failed between).
"""

from rq import cron

from integration.jobs import evaluate_dirty_accounts
from integration.queues import EVALUATE

SWEEP_INTERVAL_SECONDS = 60

cron.register(evaluate_dirty_accounts, EVALUATE, interval=SWEEP_INTERVAL_SECONDS)
