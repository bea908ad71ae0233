"""History sent in chunks to a warm stack (web app, worker and the cron sweep all running) makes
the tasks the completed history makes, and no other: the rep never sees a task built on
half-arrived history. Time is passed in (jobs._now); the web app stamps deliveries as they come.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from rq import Queue

from adapters.sandbox.adapter import SandboxCrm
from integration.cli.replay import USAGE_CHUNK, deliveries
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import build_context, read_config
from integration.jobs.queues import EVALUATE
from integration.store import keys, layout
from tests.conftest import daily_usage, drain, post_signed, whsec
from webhooks import edge
from webhooks.app import create_app

EXAMPLES = Path(__file__).resolve().parents[2] / "integration" / "cli" / "examples"
SECRET_ENVS = {"usage": "USAGE_WEBHOOK_SECRET", "job-changes": "JOB_CHANGES_WEBHOOK_SECRET"}
Delivery = tuple[str, Any]


class Stack:
    """The shipped example config on a fresh sandbox CRM, with the shipped timing (a minute to
    settle, one dirty-account evaluation a minute), its web app, and the evaluation's clock."""

    def __init__(self, folder: Path, redis_url: str) -> None:
        config = yaml.safe_load((EXAMPLES / "config.example.yaml").read_text())
        folder.mkdir()
        config["crm"]["sandbox"] = {
            "path": str(folder / "crm.sqlite3"),
            "seed_file": str(EXAMPLES / "crm-seed.yaml"),
        }
        config["evaluation"] = {"settle_seconds": 60, "interval_seconds": 60}
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        settings = Settings(config=path, redis_url=redis_url)
        self.context = build_context(settings, read_config(path))
        self.app = create_app(settings, self.context.config)
        self.client = self.app.test_client()
        self.redis: Redis = self.context.redis
        self.now = datetime.now(UTC)
        jobs.install_context(self.context)

    def close(self) -> None:
        self.app.extensions["integration.redis"].close()
        self.redis.close()

    def post(self, kind: str, body: Any) -> None:
        secret = self.context.config.secret(SECRET_ENVS[kind])
        answer = post_signed(self.client, f"/webhooks/{kind}", secret, body)
        assert answer.status_code == 202, answer.json

    def worker_and_cron(self) -> None:
        """What runs meanwhile: the worker takes every queued job, the sweep comes by."""
        drain(self.redis)
        Queue(EVALUATE, connection=self.redis).enqueue(jobs.sweep_accounts)
        drain(self.redis)

    def outcome(self) -> tuple[list[tuple[str, str, str | None, str]], dict[str, list[str]]]:
        """What a rep sees: each task (company, subject, owner, body), each account's reasons."""
        crm = self.context.crm
        assert isinstance(crm, SandboxCrm)
        tasks = sorted((t.company_id, t.subject, t.owner_id, t.body) for t in crm.tasks())
        reasons = {}
        for account_id in ("acme", "globex", "initech"):
            raw = self.redis.get(keys.assessment(account_id))
            assert raw is not None, f"{account_id} was never judged"
            reasons[account_id] = [reason["text"] for reason in json.loads(raw)["reasons"]]
        return tasks, reasons


@pytest.fixture
def stacks(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Stack]]:
    for env in SECRET_ENVS.values():
        monkeypatch.setenv(env, whsec())
    opened: list[Stack] = []

    def fresh(name: str) -> Stack:
        """A new stack on an emptied database (the previous one's data is gone)."""
        with Redis.from_url(redis_url) as client:
            client.flushdb()
            layout.prepare(client)
        stack = Stack(tmp_path / name, redis_url)
        monkeypatch.setattr(jobs, "_now", lambda: stack.now)
        monkeypatch.setattr(edge, "now", lambda: stack.now)
        opened.append(stack)
        return stack

    yield fresh
    jobs.install_context(None)
    for stack in opened:
        stack.close()


def warm_run(stack: Stack, sent: list[Delivery], seconds_apart: float) -> None:
    """Each delivery, then the worker and the sweep; the chunks `seconds_apart`, and the worker
    and the sweep come by again once the clock has moved (what they judge then is what a rep
    could see mid-replay)."""
    for kind, body in sent:
        stack.post(kind, body)
        stack.worker_and_cron()
        stack.now += timedelta(seconds=seconds_apart)
        stack.worker_and_cron()
    stack.now += timedelta(seconds=61)  # the last delivery has settled
    stack.worker_and_cron()
    settle_backfill(stack)


def cold_run(stack: Stack, sent: list[Delivery]) -> None:
    """All the history first, then one evaluation."""
    for kind, body in sent:
        stack.post(kind, body)
    stack.now += timedelta(seconds=61)
    stack.worker_and_cron()
    settle_backfill(stack)


def settle_backfill(stack: Stack) -> None:
    """The history has been quiet for backfill_quiet_seconds: accounts judged on part of it
    while it came (and a job change that waited for them) are judged on all of it."""
    stack.now += timedelta(seconds=901)
    stack.worker_and_cron()


@pytest.mark.parametrize(
    ("seconds_apart", "shuffled_by"),
    [(2, None), (90, None), (2, 1), (2, 7)],  # within the settle time, beyond it; out of order
)
def test_replaying_the_samples_in_chunks_into_a_warm_stack_gives_the_cold_runs_tasks(
    stacks: Callable[[str], Stack], seconds_apart: float, shuffled_by: int | None
) -> None:
    today = datetime.now(UTC).date()
    sent = [(kind, body) for kind, _, body in deliveries(EXAMPLES, today)]
    assert sum(kind == "usage" for kind, _ in sent) > 3  # several 500-event chunks
    if shuffled_by is not None:  # a backfill sent out of order is judged whole once quiet
        random.Random(shuffled_by).shuffle(sent)  # noqa: S311 - a test's seeded order

    warm = stacks("warm")
    warm_run(warm, sent, seconds_apart)
    warm_tasks, warm_reasons = warm.outcome()

    cold = stacks("cold")
    cold_run(cold, sent)
    cold_tasks, cold_reasons = cold.outcome()
    assert warm_reasons == cold_reasons
    assert [task[:3] for task in warm_tasks] == [task[:3] for task in cold_tasks]
    if seconds_apart < 60 and shuffled_by is None:  # it settles at once: the same text too
        assert warm_tasks == cold_tasks
    # Else a task's text is that of when it was made: the promotion, sent 90 s after the usage
    # that made Acme's task (or, shuffled, before it), is among Acme's reasons but not in it.
    subjects = [subject for _, subject, _, _ in warm_tasks]
    assert subjects[0].startswith("Check in with Acme Analytics: product usage is down ")
    assert subjects[1:] == [
        "Meet Sam Lee, new Head of Analytics at Acme Analytics",
        "Priya Natarajan left Globex: find a new champion",
    ]
    assert warm_reasons["initech"] == []


def acme_backfill(yesterday: datetime) -> list[Delivery]:
    """A steady account's 1,800 events, oldest first, in chunks, as a warehouse sends them."""
    history = sorted(daily_usage("acme", [20] * 90, end=yesterday), key=lambda e: e["timestamp"])
    return [
        ("usage", history[start : start + USAGE_CHUNK])
        for start in range(0, len(history), USAGE_CHUNK)
    ]


@pytest.mark.parametrize("seconds_apart", [10, 90])  # within the settle time, and beyond it
def test_a_90_day_backfill_into_a_warm_system_makes_no_task_its_history_would_not(
    stacks: Callable[[str], Stack], seconds_apart: float
) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    live = [
        ("usage", daily_usage("globex", [12] * 60, end=yesterday)),
        ("usage", daily_usage("initech", [3] * 60, end=yesterday)),
    ]
    backfill = acme_backfill(yesterday)

    warm = stacks("warm")
    warm_run(warm, live, seconds_apart=30)  # running, judged, for a while already
    warm_run(warm, backfill, seconds_apart)
    cold = stacks("cold")
    cold_run(cold, live + backfill)

    assert warm.outcome() == cold.outcome()
    assert warm.outcome()[0] == []


@pytest.mark.parametrize("seconds_apart", [10, 90])  # within the settle time, and beyond it
def test_a_90_day_backfill_into_an_account_already_getting_live_usage_makes_no_false_task(
    stacks: Callable[[str], Stack], seconds_apart: float
) -> None:
    """Live usage for the account came first (its newest delivered day is yesterday already), so
    only the history still arriving can tell that it is not yet complete."""
    yesterday = datetime.now(UTC) - timedelta(days=1)
    live = [
        ("usage", daily_usage("globex", [12] * 60, end=yesterday)),
        ("usage", daily_usage("initech", [3] * 60, end=yesterday)),
        ("usage", daily_usage("acme", [20] * 2, end=yesterday)),
    ]
    backfill = acme_backfill(yesterday)

    warm = stacks("warm")
    warm_run(warm, live, seconds_apart=30)
    warm_run(warm, backfill, seconds_apart)
    cold = stacks("cold")
    cold_run(cold, live + backfill)

    assert warm.outcome() == cold.outcome()
    assert warm.outcome()[0] == []


def test_an_account_busier_than_the_settle_time_is_still_judged_and_its_job_change_too(
    stacks: Callable[[str], Stack],
) -> None:
    """Live events every 30 s for three hours (a minute to settle): the account is judged, and
    a champion leaving it meanwhile makes its task."""
    stack = stacks("busy")
    stack.now = stack.now.replace(hour=6, minute=0)  # three hours stay within the day
    yesterday = stack.now - timedelta(days=1)
    stack.post("usage", daily_usage("globex", [12] * 60, end=yesterday))
    stack.now += timedelta(seconds=61)
    stack.worker_and_cron()
    stack.redis.delete(keys.assessment("globex"))
    judged = False
    for n in range(360):
        stack.now += timedelta(seconds=30)
        event = {"account_id": "globex", "user_id": f"u{n % 7}", "event": "login"}
        stack.post("usage", [event | {"timestamp": stack.now.isoformat()}])
        if n == 120:
            change = json.loads((EXAMPLES / "job-changes" / "priya-left-globex.json").read_text())
            stack.post("job-changes", change | {"detected_at": stack.now.isoformat()})
        if n % 10 == 0:  # the worker and the minute sweep, now and then
            stack.worker_and_cron()
        judged = judged or stack.redis.exists(keys.assessment("globex")) == 1
    assert judged
    crm = stack.context.crm
    assert isinstance(crm, SandboxCrm)
    assert [t.subject for t in crm.tasks()] == ["Priya Natarajan left Globex: find a new champion"]
