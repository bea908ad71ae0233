"""Evaluation scheduling against a real Redis and RQ: nothing waits forever, nothing is lost."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry

from adapters.protocol import FieldUpdate, WriteResult
from adapters.sandbox.adapter import SandboxCrm
from integration.errors import CrmFatalError
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context
from integration.jobs.queues import EVALUATE, SIGNALS
from integration.store import waiting
from tests.conftest import USAGE_SECRET_ENV, daily_usage, drain, fold, post_signed


def sandbox(context: Context) -> SandboxCrm:
    assert isinstance(context.crm, SandboxCrm)
    return context.crm


def test_accounts_taken_by_a_worker_that_died_are_evaluated_by_the_sweep(
    context: Context, redis: Redis
) -> None:
    waiting.remember_account(redis, "acme")
    waiting.mark_dirty(redis, ["acme"])
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    assert waiting.take_dirty_accounts(redis, 10, long_ago) == ["acme"]  # ... and then it died

    assert jobs.sweep_accounts() == 1
    assert redis.zcard("ci:processing_accounts") == 0
    assert redis.exists("ci:{acct:acme}:assessment")


def test_a_redelivery_is_a_duplicate_and_the_fold_still_queues_the_evaluation(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    events = daily_usage("acme", [10] * 3)
    secret = webhook_secrets[USAGE_SECRET_ENV]
    post_signed(client, "/webhooks/usage", secret, events, msg_id="msg_lost")  # answer lost
    again = post_signed(client, "/webhooks/usage", secret, events, msg_id="msg_lost")
    assert again.json["status"] == "duplicate"
    fold(redis)
    assert Queue(EVALUATE, connection=redis).count == 1


def test_a_later_fold_queues_the_evaluation_a_failed_enqueue_did_not(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    secret = webhook_secrets[USAGE_SECRET_ENV]
    post_signed(client, "/webhooks/usage", secret, daily_usage("acme", [10] * 3))
    fold(redis)
    Queue(EVALUATE, connection=redis).empty()  # as if Redis failed right after the fold
    post_signed(client, "/webhooks/usage", secret, daily_usage("acme", [10]))
    fold(redis)
    assert Queue(EVALUATE, connection=redis).count == 1


class RefusesFieldWrites(SandboxCrm):
    def write_fields(self, updates: list[FieldUpdate]) -> WriteResult:  # type: ignore[override]
        raise CrmFatalError(
            self.name, "write_fields", "PROPERTY_DOESNT_EXIST: churn_risk_level", 400
        )


def test_a_crm_refusal_goes_to_the_failed_registry_at_once_with_its_message(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    jobs.install_context(
        replace(context, crm=RefusesFieldWrites(sandbox(context).path, "product_account_id"))
    )
    post_signed(
        client, "/webhooks/usage", webhook_secrets[USAGE_SECRET_ENV], daily_usage("acme", [10] * 3)
    )
    drain(redis)
    registry = FailedJobRegistry(EVALUATE, connection=redis)
    [job_id] = registry.get_job_ids()
    job = Queue(EVALUATE, connection=redis).fetch_job(job_id)
    assert job is not None
    assert job.retries_left == 0
    assert "PROPERTY_DOESNT_EXIST: churn_risk_level" in (job.latest_result().exc_string or "")


def test_a_late_event_does_not_overwrite_a_newer_seat_count(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    secret = webhook_secrets[USAGE_SECRET_ENV]
    post_signed(client, "/webhooks/usage", secret, daily_usage("acme", [1], seats=50))
    fold(redis)
    late = daily_usage("acme", [1], end=datetime.now(UTC) - timedelta(days=10), seats=20)
    post_signed(client, "/webhooks/usage", secret, late)
    fold(redis)
    assert redis.hget("ci:{acct:acme}:meta", "seats") == b"50"


def test_a_long_evaluation_gives_way_to_the_signals_waiting_and_finishes_after(
    context: Context, redis: Redis, monkeypatch: Any
) -> None:
    accounts = ["acme", "globex", "initech"]
    for account in accounts:
        waiting.remember_account(redis, account)
    waiting.mark_dirty(redis, accounts)
    monkeypatch.setattr(jobs, "EVALUATION_BATCH", 1)
    monkeypatch.setattr(jobs, "EVALUATION_JOB_SECONDS", 0.0)  # give way after every batch
    evaluate = Queue(EVALUATE, connection=redis)
    evaluate.enqueue("integration.jobs.evaluate.evaluate_dirty_accounts", job_id="first")
    SimpleWorker([Queue(SIGNALS, connection=redis), evaluate], connection=redis).work(
        burst=True, max_jobs=1
    )
    evaluated = [a for a in accounts if redis.exists(f"ci:{{acct:{a}}}:assessment")]
    assert len(evaluated) == 1  # one batch, then it gave way
    [rest] = evaluate.get_jobs()
    [run_began] = rest.args  # the rest of the run takes only what had settled by then
    assert abs(run_began - datetime.now(UTC).timestamp()) < 60
    # A people signal arrives while the run is under way.
    signal = Queue(SIGNALS, connection=redis).enqueue(
        "integration.jobs.evaluate.evaluate_account", "umbrella"
    )

    SimpleWorker([Queue(SIGNALS, connection=redis), evaluate], connection=redis).work(
        burst=True, max_jobs=1
    )
    assert signal.get_status() == "finished"  # the signal went before the rest of the run
    drain(redis)
    assert all(redis.exists(f"ci:{{acct:{a}}}:assessment") for a in accounts)
    assert waiting.waiting_accounts(redis) == set()
