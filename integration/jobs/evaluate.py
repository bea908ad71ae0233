"""RQ jobs: load state from Redis, call the pure rules and engine, write to the CRM.

Jobs take primitives (ids, JSON), never clients. The process's Context is built once from Settings
on first use, or installed by whoever starts the worker (the CLI, the tests).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import ParamSpec, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import get_current_job

from adapters.protocol import CrmAccount
from integration.config.settings import Settings
from integration.errors import CrmFatalError, CrmRetriableError
from integration.jobs import holding, trail
from integration.jobs.account_state import judge_accounts, write_fields
from integration.jobs.account_state import judged_now as judged_now  # the CLI's `evaluate`
from integration.jobs.account_state import load_states as load_states
from integration.jobs.context import Context, build_context
from integration.jobs.queues import (
    CRM_RETRY_INTERVALS_SECONDS,
    enqueue_dirty_evaluation,
    enqueue_evaluation_rest,
    enqueue_playbook_step,
)
from integration.risk.assess import (
    assessment_to_json,
)
from integration.signals.events import ChangeType, JobChanged
from integration.store import freshness, history, keys, renames, waiting
from integration.store.metrics import count
from integration.store.unmatched import forget_unmatched, record_unmatched
from playbooks.runs import Run
from playbooks.waterfall import Judged, advance

logger = logging.getLogger(__name__)

EVALUATION_BATCH = 200
# How long one evaluation job runs before the rest of its run waits behind the signals queued.
EVALUATION_JOB_SECONDS = 0.5
# Tries left to a job that failed for another reason than the CRM's (a Redis blip, a bug).
OTHER_FAILURE_RETRIES = 2
# An account a worker took without a lease (a release before 2026-12) this long ago and never
# finished belongs to a dead worker. Leased batches are released when their lease runs out.
STALE_PROCESSING = timedelta(minutes=10)
P = ParamSpec("P")
R = TypeVar("R")

_context: Context | None = None


def install_context(context: Context | None) -> None:
    """Use this context for jobs run in this process (None: build it from Settings on next use)."""
    global _context  # noqa: PLW0603 - one context per worker process, set at start-up
    _context = context


def current_context() -> Context:
    if _context is None:
        install_context(build_context(Settings()))
    assert _context is not None  # noqa: S101 - narrowing for mypy; install_context just set it
    return _context


def crm_job(job_function: Callable[P, R]) -> Callable[P, R]:
    """Shape RQ's retry by what the CRM said.

    A refusal (4xx) will not change on retry: the job goes straight to the failed registry with
    the CRM's message. A wait the CRM asked for (HubSpot's daily limit, a Retry-After) sets the
    delay of the next retry instead of RQ's fixed intervals. A CRM or Redis outage is retried for
    a day (queues.CRM_RETRY); anything else, a bug say, a few times only: waiting does not mend
    it.
    """

    @functools.wraps(job_function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        job = get_current_job()
        try:
            return job_function(*args, **kwargs)
        except CrmFatalError as exc:
            count(current_context().redis, "crm_errors", {"crm": exc.crm, "kind": "fatal"})
            if job is not None:
                job.retries_left = 0
            raise
        except CrmRetriableError as exc:
            count(current_context().redis, "crm_errors", {"crm": exc.crm, "kind": "retriable"})
            if job is not None:
                job.retry_intervals = (
                    [max(1, math.ceil(exc.retry_after_seconds))]
                    if exc.retry_after_seconds
                    else list(CRM_RETRY_INTERVALS_SECONDS)
                )
            raise
        except (RedisConnectionError, RedisTimeoutError):
            raise  # Redis restarting or out of reach: an outage, waited out like a CRM's
        except Exception:
            if job is not None and job.retries_left:
                job.retries_left = min(job.retries_left, OTHER_FAILURE_RETRIES)
            raise

    return run


@crm_job
def evaluate_dirty_accounts(run_began: float | None = None) -> int:
    """Evaluate, in batches, every account that received usage since it was last evaluated and
    has settled (no change for `evaluation.settle_seconds`). Runs at most once per
    `evaluation.interval_seconds` however often it is queued: a run too soon takes nothing.
    Accounts left waiting get a job queued for when they can be taken, so none waits forever
    (the cron sweep also looks every few seconds). The run holds its batches under a lease
    (jobs/holding.py): should this worker die, the sweep releases them within seconds.

    After EVALUATION_JOB_SECONDS the run gives way: the rest is a job of its own (`run_began`,
    the Unix time the run began: the interval does not stop it, and it takes only accounts that
    had settled by then), queued behind the signals waiting, so a champion's departure is not
    kept from its task by thousands of accounts' usage."""
    context = current_context()
    timing = context.config.evaluation
    total = 0
    started = time.monotonic()
    began = _now() if run_began is None else datetime.fromtimestamp(run_began, UTC)
    # Checked, and recorded, by the first batch of a run only.
    interval = 0 if run_began is not None else timing.interval_seconds
    with holding.held_batches(context.redis) as lease:
        while batch := waiting.take_dirty_accounts(
            context.redis,
            EVALUATION_BATCH,
            _now(),
            timing.settle_seconds,
            interval,
            lease,
            settled_by=began,
        ):
            interval = 0
            _evaluate_batch(context, batch, lease.holder)
            total += len(batch)
            if time.monotonic() - started > EVALUATION_JOB_SECONDS:
                enqueue_evaluation_rest(context.queue_redis, lease.holder, began.timestamp())
                return total
    _queue_next_evaluation(context)
    return total


def _evaluate_batch(context: Context, batch: list[str], holder: str) -> None:
    """One batch, then let go of it: finished, or handed back when the evaluation failed."""
    try:
        receiving = evaluate_accounts(context, batch, _now())
    except CrmFatalError:
        # A refusal that no retry will change: the failed job keeps the CRM's message.
        waiting.finish_accounts(context.redis, batch, holder)
        raise
    except Exception:
        # Hand the batch back so RQ's retry (or the sweep) evaluates it; nothing is lost.
        waiting.release_accounts(context.redis, batch, holder)
        raise
    waiting.finish_accounts(context.redis, batch, holder)
    count(context.redis, "accounts_evaluated", {}, len(batch))
    # An account still receiving history was judged on part of it: judge it again, on all
    # of it, once that backfill has been quiet for backfill_quiet_seconds.
    waiting.wait_until(context.redis, receiving, context.config.evaluation.settle_seconds)


def _queue_next_evaluation(context: Context) -> None:
    """A job at the start of the interval in which the first waiting account can be taken."""
    timing = context.config.evaluation
    due = waiting.next_evaluation_due(context.redis, timing.settle_seconds, timing.interval_seconds)
    if due is None:
        return
    interval = max(1, timing.interval_seconds)
    start = (int(due) // interval + 1) * interval  # after `due`, so never this job's own id
    now = datetime.now(UTC)  # RQ's scheduler runs on the wall clock
    at = datetime.fromtimestamp(max(start, now.timestamp() + 1), UTC)
    enqueue_dirty_evaluation(context.queue_redis, now, timing.interval_seconds, at=at)


def sweep_accounts() -> int:
    """Every few seconds (jobs/cron.py): put back the accounts of batches whose lease ran out
    (their worker died), and those a worker of an older release took without a lease and held
    past STALE_PROCESSING; then evaluate the waiting ones. Accounts a process of a release
    before 2026-12 left under the keys' untagged names are taken over first."""
    context = current_context()
    now = _now()
    renames.adopt_untagged_keys(context.redis)
    released = waiting.release_abandoned_accounts(context.redis, now)
    released += waiting.requeue_stale_accounts(context.redis, now - STALE_PROCESSING)
    if released:
        logger.warning("accounts of dead workers put back", extra={"accounts": released})
    return evaluate_dirty_accounts()


def evaluate_all_accounts() -> int:
    """Daily (jobs/cron.py): an account whose usage stopped sends nothing; judge it too."""
    waiting.mark_all_accounts_dirty(current_context().redis)
    return evaluate_dirty_accounts()


@crm_job
def process_job_change(change_json: dict[str, object]) -> str:
    """Remember a people signal on the account the person left and on the one they joined or
    were promoted in, then re-evaluate those accounts."""
    context = current_context()
    change = JobChanged.from_json(change_json)
    left_account = (
        None
        if change.previous_account_id
        else _crm_account_by_domain(context, change.previous_company_domain)
    )
    left = change.previous_account_id or (left_account.product_account_id if left_account else None)
    if left_account is not None and not change.previous_company_name:
        # The rep reads the company's name, as the CRM has it, not a domain.
        change = replace(change, previous_company_name=left_account.name)
    joined = None
    if change.change_type in (ChangeType.COMPANY_CHANGE, ChangeType.PROMOTION):
        domain = change.current_company_domain or (
            change.previous_company_domain if change.change_type is ChangeType.PROMOTION else None
        )
        found = None if change.current_account_id else _crm_account_by_domain(context, domain)
        joined = change.current_account_id or (found.product_account_id if found else None)
        if joined is None and change.change_type is ChangeType.PROMOTION:
            joined = left  # promoted where they were
    if left is None and joined is None:
        reference = change.previous_company_domain or change.current_company_domain or ""
        record_unmatched(context.redis, "job_change", reference, change.event_id, _now())
        return "unmatched"
    signal = replace(change, previous_account_id=left, current_account_id=joined)
    for account_id in dict.fromkeys(a for a in (left, joined) if a):
        record_people_signal(context, signal, account_id)
    return ", ".join(a for a in (left, joined) if a)


def record_people_signal(context: Context, change: JobChanged, account_id: str) -> None:
    """Store the signal on the account (once, by its dedupe id) and re-evaluate the account,
    unless it waits for the dirty-account evaluation (new usage, maybe still settling): that
    one judges the usage and the signal together, once."""
    new = context.redis.hset(
        keys.people_signals(account_id), change.dedupe_id, json.dumps(change.to_json())
    )
    if new:  # the same change sent again is the same signal: one entry in the trail
        history.record(
            context.redis, [trail.people_signal(change, account_id, _now())], context.config.history
        )
    waiting.remember_account(context.redis, account_id)
    if context.redis.zscore(keys.dirty_accounts(), account_id) is not None:
        _queue_next_evaluation(context)
        return
    evaluate_accounts(context, [account_id], _now())


def _now() -> datetime:
    return datetime.now(UTC)


def _crm_account_by_domain(context: Context, domain: str | None) -> CrmAccount | None:
    return context.crm.find_account_by_domain(domain) if domain else None


def evaluate_accounts(
    context: Context, account_ids: Sequence[str], now: datetime
) -> dict[str, float]:
    """Assess accounts, write changed fields in one batch, keep the assessments, then move
    the playbooks along: runs start where a trigger was newly raised (their first steps' tasks
    created in batches), and end where it cleared. A CRM refusal of one account's task is
    recorded on its run and costs the others nothing (playbooks/waterfall.py).

    An account still receiving history (a backfill in chunks) is judged on part of it: its
    fields are written, but its assessment is not kept and no playbook moves, so the judgement
    of all of it, once quiet, starts what a cold run would. Returns those accounts, with when
    their backfill turns quiet."""
    found = context.crm.find_accounts(account_ids)
    forget_unmatched(context.redis, "account", list(found))
    for account_id in account_ids:
        if account_id not in found:
            record_unmatched(context.redis, "account", account_id, "", now)
    judged, _ = judge_accounts(context, found, now)  # as `integration plan` judges them
    write_fields(context, judged)
    receiving = freshness.receiving_history_until(
        context.redis, sorted(found), now, context.config.evaluation.backfill_quiet_seconds
    )
    whole = [item for item in judged if item.after.account_id not in receiving]
    # The trail before the playbooks, so it reads signal, assessment, then steps. Should the
    # playbooks fail, the retry finds its assessment in the trail already and adds none.
    renewals, renewal_values = trail.renewal_events(context, whole, now)
    assessed = trail.unrecorded_assessments(context.redis, trail.assessment_events(whole, now))
    history.record(context.redis, [*assessed, *renewals], context.config.history)
    trail.keep_renewals(context, renewals, renewal_values)
    # The playbooks first: should this fail, the assessments kept so far still differ from
    # these, so the retry raises the same triggers again (a run already started is not doubled).
    advance(context, whole, context.playbooks, now, step_refused(context))
    _keep_assessments(context, whole)
    return receiving


@crm_job
def evaluate_account(account_id: str) -> str:
    """One account on its own (jobs queued by earlier releases still name it)."""
    evaluate_accounts(current_context(), [account_id], _now())
    return account_id


def _keep_assessments(context: Context, judged: Sequence[Judged]) -> None:
    pipe = context.redis.pipeline(transaction=False)
    for item in judged:
        pipe.set(keys.assessment(item.after.account_id), json.dumps(assessment_to_json(item.after)))
        if item.after.reason_keys != (item.before.reason_keys if item.before else frozenset()):
            logger.info(
                "risk changed",
                extra={"account_id": item.after.account_id, "level": item.after.level.value},
            )
    pipe.execute()


def step_refused(context: Context) -> Callable[[Run], None]:
    """What to do with a playbook step the CRM refused: give it a job of its own."""

    def hand_over(run: Run) -> None:
        enqueue_playbook_step(context.queue_redis, run.account_id, run.slot, run.next_step)

    return hand_over
