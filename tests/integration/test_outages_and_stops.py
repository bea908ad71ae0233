"""Stops and outages at the edges of the happy path, with real Redis and real RQ: a worker or cron
asked to stop while Redis is down stops in seconds, a Redis outage is waited out like a CRM's, a
signed body as deep as the parser goes is a 400, and the rest of an evaluation run leaves what
changed since it began to the next interval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context
from integration.jobs.queues import CRM_RETRY, EVALUATE, SIGNALS
from integration.signals.events import parse_job_changes
from integration.store import keys, waiting
from tests.cluster import skip_unless_ci
from tests.conftest import CHAMPION_LEFT
from tests.integration import hostile
from tests.integration.test_recovery import alive, child_pids
from tests.integration.test_worker_faults import (
    REDIS_SERVER,
    PrivateRedis,
    poll_until,
    procfile_command,
    registered,
    start,
    worked_by,
)

__all__ = ["start"]  # the fixture, imported for the tests below

STOP_SECONDS = 15.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if REDIS_SERVER is None:
        skip_unless_ci("no redis-server here")  # CI fails instead: it must run these
    (tmp_path / "redis").mkdir()
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def stopped_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


# --- item 2: a stop asked for while Redis is down -------------------------------------------


def test_the_procfile_worker_stops_on_sigterm_while_redis_is_down(
    private_redis: PrivateRedis, start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = start(procfile_command("worker", private_redis.url), {})
    with private_redis.client() as redis:
        poll_until(lambda: registered(redis, worker.pid), "the worker to start")
        worked_by(redis, worker.pid)
    scheduler = child_pids(worker.pid)
    assert scheduler, "the worker forked its scheduler"
    private_redis.stop()
    time.sleep(2)  # the worker and its scheduler now wait for Redis
    worker.send_signal(signal.SIGTERM)
    try:
        assert stopped_within(worker, STOP_SECONDS), "a supervisor's stop waits for Redis"
    finally:
        # The scheduler, waiting for Redis, ignores even the SIGTERM its parent's death sends.
        for pid in scheduler:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_cron_stops_on_sigterm_while_redis_is_down(
    private_redis: PrivateRedis, start: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    every_second = tmp_path / "every_second.py"
    every_second.write_text(
        f"import os\nfrom rq import cron\ncron.register(os.getpid, {EVALUATE!r}, interval=1)\n"
    )
    command = procfile_command("cron", private_redis.url)
    cron = start([*command[:-1], str(every_second)], {})
    with private_redis.client() as redis:
        poll_until(lambda: Queue(EVALUATE, connection=redis).count > 0, "cron to queue a job")
    private_redis.stop()
    time.sleep(2)
    cron.send_signal(signal.SIGTERM)
    assert stopped_within(cron, STOP_SECONDS), "a supervisor's stop waits for Redis"


# --- item 5: the accept path without the depth pre-scan -------------------------------------


def deep_usage(depth: int, inner: str, account: str) -> bytes:
    event = {
        "account_id": account,
        "user_id": "u1",
        "event": "login",
        "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }
    head = json.dumps(event)[:-1]
    return f'{head}, "properties": {{"p": {"[" * depth}{inner}{"]" * depth}}}}}'.encode()


def test_a_signed_usage_body_at_the_parsers_depth_limit_never_gets_a_500(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in hostile.ENV.items():
        monkeypatch.setenv(name, value)
    with hostile.hostile_app(tmp_path, redis_url) as app:
        client = app.test_client()
        # The deepest plain body this request's stack parses (the guard's limit): one deeper
        # is a 400.
        deepest = max(
            depth
            for depth in range(900, 1000)
            if hostile.post(client, "usage", deep_usage(depth, "", f"a{depth}")).status_code == 202
        )
        statuses = {
            depth: hostile.post(
                client, "usage", deep_usage(depth, '"\\ud83d\\ude00"', f"b{depth}")
            ).status_code
            for depth in range(deepest - 3, deepest + 3)
        }
    assert 500 not in statuses.values(), statuses


# --- item 5 / retries: the rest of a run -----------------------------------------------------


@pytest.fixture
def hourly(context: Context, tmp_path: Path) -> Iterator[Context]:
    """The test config, evaluated at most once an hour (nothing to settle)."""
    data = yaml.safe_load(context.settings.config.read_text())
    data["evaluation"] = {
        "settle_seconds": 0,
        "interval_seconds": 3600,
        "backfill_quiet_seconds": 0,
    }
    path = tmp_path / "hourly.yaml"
    path.write_text(yaml.safe_dump(data))
    built = build_context(Settings(config=path, redis_url=context.settings.redis_url))
    jobs.install_context(built)
    yield built
    jobs.install_context(context)


def test_the_rest_of_a_run_leaves_accounts_changed_since_the_run_began_to_the_next_interval(
    hourly: Context, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = ["acme", "globex", "initech"]
    for account in accounts:
        waiting.remember_account(redis, account)
    waiting.mark_dirty(redis, accounts)
    monkeypatch.setattr(jobs, "EVALUATION_BATCH", 1)
    monkeypatch.setattr(jobs, "EVALUATION_JOB_SECONDS", 0.0)  # give way after every batch
    evaluate = Queue(EVALUATE, connection=redis)
    evaluate.enqueue("integration.jobs.evaluate.evaluate_dirty_accounts")
    queues = [Queue(SIGNALS, connection=redis), evaluate]
    SimpleWorker(queues, connection=redis).work(burst=True, max_jobs=1)
    assert redis.exists(keys.assessment("acme"))  # the run's first batch, then it gave way
    # acme has new usage after the run began (the fold scores it by when it changed).
    redis.zadd(keys.dirty_accounts(), {"acme": time.time()})

    SimpleWorker(queues, connection=redis).work(burst=True)
    assert all(redis.exists(keys.assessment(account)) for account in accounts)
    assert "acme" in waiting.waiting_accounts(redis), "judged again within the hour"


# --- retries: a Redis outage is not a bug ----------------------------------------------------


def test_a_people_signal_outlives_a_state_redis_outage(
    context: Context, redis: Redis, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    down = Settings(
        config=context.settings.config,
        redis_url=context.settings.redis_url,
        state_redis_url=private_redis.url,
    )
    jobs.install_context(build_context(down, context.config))
    private_redis.stop()  # the state Redis is away (a restart, a failover); the queue answers
    signals = Queue(SIGNALS, connection=redis)
    job = signals.enqueue(
        "integration.jobs.evaluate.process_job_change",
        parse_job_changes(CHAMPION_LEFT, datetime.now(UTC), 1)[0].to_json(),
        retry=CRM_RETRY,  # as webhooks/people.py queues it (queues.enqueue_job_change)
    )
    scheduled = ScheduledJobRegistry(queue=signals)
    for _ in range(4):  # four tries, as many minutes apart as the retry asks, Redis still down
        SimpleWorker([signals], connection=redis).work(burst=True)
        for job_id in scheduled.get_job_ids():
            scheduled.remove(job_id)
            signals.enqueue_job(Job.fetch(job_id, connection=redis))
    assert Job.fetch(job.id, connection=redis).get_status() != JobStatus.FAILED
