"""A dead worker's accounts come back in seconds, a live worker keeps its batch, and the periodic
jobs retry without filling the failed registry: real Redis, real RQ, a real worker SIGKILLed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from redis import Redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from adapters.sandbox.adapter import SandboxCrm
from integration.config.settings import Settings
from integration.errors import CrmRetriableError
from integration.jobs import cron, holding, periodic
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context
from integration.jobs.queues import EVALUATE, enqueue_dirty_evaluation
from integration.store import keys, waiting
from integration.store.metrics import METRICS_KEY
from integration.store.waiting import Lease
from tests.conftest import JUDGED_AT_ONCE, WEBHOOKS, drain

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=holding.LEASE_SECONDS)
DEADLINE_SECONDS = 10.0


def poll_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {DEADLINE_SECONDS} s for {what}")
        time.sleep(0.01)


def dirty(redis: Redis, accounts: Sequence[str]) -> None:
    for account in accounts:
        waiting.remember_account(redis, account)
    waiting.mark_dirty(redis, accounts)


def test_a_batch_whose_lease_ran_out_is_released_and_its_run_interval_given_back(
    redis: Redis,
) -> None:
    dirty(redis, ["acme", "globex"])
    lease = Lease("job-1/a", LEASE)
    assert waiting.take_dirty_accounts(redis, 10, T0, 0, 60, lease) == ["acme", "globex"]

    assert waiting.release_abandoned_accounts(redis, T0 + LEASE - timedelta(seconds=1)) == 0
    assert waiting.release_abandoned_accounts(redis, T0 + LEASE) == 2
    assert waiting.waiting_accounts(redis) == {"acme", "globex"}
    assert not redis.exists(keys.processing_accounts(), keys.processing_holders())
    # The dead run's interval is given back: the next run takes the accounts at once.
    assert waiting.take_dirty_accounts(redis, 10, T0 + LEASE, 0, 60) == ["acme", "globex"]


def test_a_renewed_lease_keeps_a_slow_batch_past_the_old_ten_minute_limit(redis: Redis) -> None:
    dirty(redis, ["acme"])
    lease = Lease("job-1/a", LEASE)
    waiting.take_dirty_accounts(redis, 10, T0, lease=lease)
    later = T0 + jobs.STALE_PROCESSING + timedelta(minutes=1)
    assert waiting.renew_lease(redis, lease, later)

    assert waiting.requeue_stale_accounts(redis, later - jobs.STALE_PROCESSING) == 0
    assert waiting.release_abandoned_accounts(redis, later + timedelta(seconds=1)) == 0
    assert waiting.waiting_accounts(redis) == set()


def test_a_holder_that_lost_its_lease_leaves_the_next_holder_alone(redis: Redis) -> None:
    dirty(redis, ["acme"])
    slow, next_one = Lease("job-1/slow", LEASE), Lease("job-2/next", LEASE)
    waiting.take_dirty_accounts(redis, 10, T0, lease=slow)
    waiting.release_abandoned_accounts(redis, T0 + LEASE)
    assert waiting.take_dirty_accounts(redis, 10, T0 + LEASE, lease=next_one) == ["acme"]

    assert not waiting.renew_lease(redis, slow, T0 + LEASE)
    waiting.finish_accounts(redis, ["acme"], slow.holder)
    assert redis.hget(keys.processing_holders(), "acme") == b"job-2/next"
    waiting.finish_accounts(redis, ["acme"], next_one.holder)
    assert not redis.exists(keys.processing_accounts(), keys.processing_holders())


def test_a_live_run_renews_its_lease(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holding, "RENEW_SECONDS", 0.02)
    dirty(redis, ["acme"])
    with holding.held_batches(redis) as lease:
        waiting.take_dirty_accounts(redis, 10, T0, lease=lease)
        first = redis.zscore(keys.batch_leases(), lease.holder)
        poll_until(lambda: redis.zscore(keys.batch_leases(), lease.holder) != first, "a renewal")
    assert not redis.exists(keys.batch_leases())


def test_a_worker_killed_mid_batch_loses_no_account_and_doubles_none(
    redis: Redis, redis_url: str, tmp_path: Path, webhook_secrets: dict[str, str]
) -> None:
    accounts = [f"acct-{n:03}" for n in range(2 * jobs.EVALUATION_BATCH + 50)]
    settings = Settings(config=many_accounts_config(tmp_path, accounts), redis_url=redis_url)
    context = build_context(settings)
    dirty(redis, accounts)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        poll_until(lambda: Worker.all(connection=redis), "the worker to start")
        with crm_locked(tmp_path / "crm.sqlite3"):  # its first batch waits on the CRM ...
            enqueue_dirty_evaluation(redis, datetime.now(UTC), 0)
            poll_until(lambda: redis.hlen(keys.processing_holders()), "the worker to take a batch")
            children = child_pids(worker.pid)  # its scheduler
            os.kill(worker.pid, signal.SIGKILL)  # ... and the worker dies there
            worker.wait()
    finally:
        worker.kill()
        worker.wait()
    # The scheduler it forked does not live on as an orphan holding the scheduler's locks.
    assert children
    poll_until(lambda: not any(alive(pid) for pid in children), "its scheduler to stop")
    assert redis.hlen(keys.processing_holders()) == jobs.EVALUATION_BATCH

    killed = datetime.now(UTC)
    assert waiting.release_abandoned_accounts(redis, killed) == 0  # not yet: the lease runs
    assert waiting.release_abandoned_accounts(redis, killed + LEASE) == jobs.EVALUATION_BATCH
    jobs.install_context(context)
    try:
        Queue(EVALUATE, connection=redis).enqueue(jobs.evaluate_dirty_accounts)
        drain(redis)
    finally:
        jobs.install_context(None)
        context.redis.close()

    assert redis.hget(METRICS_KEY, "accounts_evaluated|") == str(len(accounts)).encode()
    assessed = redis.exists(*[keys.assessment(account) for account in accounts])
    assert assessed == len(accounts)
    assert not redis.exists(keys.processing_accounts(), keys.processing_holders())


def child_pids(pid: int) -> list[int]:
    """The processes `pid` forked (Linux /proc; empty elsewhere)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its (new) parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def many_accounts_config(tmp_path: Path, accounts: Sequence[str]) -> Path:
    seed = tmp_path / "seed.yaml"
    owner = {"id": "owner-ana", "name": "Ana Ortiz", "email": "ana@vendor.example"}
    companies = [
        {
            "id": str(1000 + n),
            "name": f"Company {account}",
            "domain": f"{account}.example",
            "owner_id": "owner-ana",
            "properties": {"product_account_id": account},
        }
        for n, account in enumerate(accounts)
    ]
    seed.write_text(yaml.safe_dump({"owners": [owner], "companies": companies}))
    path = tmp_path / "config.yaml"
    crm = {
        "kind": "sandbox",
        "sandbox": {"path": str(tmp_path / "crm.sqlite3"), "seed_file": str(seed)},
    }
    config = {"crm": crm, "owners": {"fallback_owner": "owner-ana"}, "webhooks": WEBHOOKS}
    path.write_text(yaml.safe_dump({**config, "evaluation": JUDGED_AT_ONCE}))
    return path


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """`integration worker`, as an operator runs it."""
    command = [sys.executable, "-m", "integration", "worker", "--config", str(settings.config)]
    env = {**os.environ, "INTEGRATION_REDIS_URL": settings.redis_url}
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


class crm_locked:  # noqa: N801 - read as a context manager
    """Hold the sandbox CRM's write lock, so a worker writing to it waits (mid-batch)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, *exc: object) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


class Unreachable(SandboxCrm):
    def find_accounts(self, product_account_ids: Sequence[str]) -> dict[str, object]:  # type: ignore[override]
        raise CrmRetriableError(self.name, "find_accounts", "503 Service Unavailable", 503)


@pytest.fixture
def crm_down(context: Context) -> Iterator[Context]:
    assert isinstance(context.crm, SandboxCrm)
    down = replace(context, crm=Unreachable(context.crm.path, context.crm.match_field))
    jobs.install_context(down)
    yield down
    jobs.install_context(context)


def test_a_failed_sweep_retries_and_is_kept_a_day_not_a_year(
    crm_down: Context, redis: Redis
) -> None:
    dirty(redis, ["acme"])
    job = Queue(EVALUATE, connection=redis).enqueue(
        periodic.sweep, failure_ttl=cron.PERIODIC_FAILURE_TTL_SECONDS
    )
    drain(redis)
    job = Job.fetch(job.id, connection=redis)
    assert (job.get_status(), job.retries_left) == (JobStatus.SCHEDULED, 1)
    assert FailedJobRegistry(EVALUATE, connection=redis).count == 0
    assert waiting.waiting_accounts(redis) == {"acme"}  # handed back, not lost

    for _ in range(2):  # its retries, run now rather than waited for
        Queue(EVALUATE, connection=redis).enqueue_job(Job.fetch(job.id, connection=redis))
        drain(redis)
    failed = FailedJobRegistry(EVALUATE, connection=redis)
    assert failed.get_job_ids() == [job.id]
    kept_until = failed.get_expiration_time(job)
    assert kept_until <= datetime.now(UTC) + timedelta(seconds=cron.PERIODIC_FAILURE_TTL_SECONDS)
