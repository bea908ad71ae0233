"""Per-account state on a 3-master Redis Cluster, RQ on a single Redis (issue 14, item 6).

The service's state client is the loopback cluster of tests/cluster.py (INTEGRATION_STATE_REDIS_URL
with INTEGRATION_STATE_REDIS_CLUSTER); its queue client is the test's own single Redis, where a
real SimpleWorker takes the jobs. Usage comes in through `integration import` and through the
webhooks (accepted into the stream on the {ingest} tag, folded one account per script); each
script keeps to one slot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from redis.cluster import RedisCluster
from rq import Queue, SimpleWorker

from adapters.sandbox.adapter import SandboxCrm
from integration.cli.devredis import claimed_database
from integration.config.schema import Config
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context, read_config
from integration.jobs.fold import fold_backlog
from integration.jobs.queues import QUEUE_NAMES, enqueue_dirty_evaluation
from integration.store import ingest_stream, keys, waiting
from integration.store.importer import import_rows
from tests.cluster import Cluster, cluster_or_skip
from tests.conftest import (
    CHAMPION_LEFT,
    PEOPLE_SECRET_ENV,
    USAGE_SECRET_ENV,
    daily_usage,
    post_signed,
    usage_complete_through_yesterday,
)
from webhooks.app import create_app

SEGMENT_SECRET = "segment-test-secret"
LAYOUT_MARK = keys.rollups_layout().encode()  # the `redis` fixture marks the queue Redis too
DROPPING = [10] * 42 + [4] * 7  # ten people a day, then four for the last week
STEADY = [10] * 49
DROP_REASONS = (
    "Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) over the last "
    "7 days.\nOnly 10 of 20 licensed seats were used in the last 30 days (50%, below 60%)."
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    yield from cluster_or_skip()


@pytest.fixture
def state(cluster: Cluster) -> Iterator[RedisCluster]:
    with cluster.client() as client:
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)
        yield client
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)


@pytest.fixture
def split_settings(config_file: Path, redis_url: str, cluster: Cluster) -> Settings:
    return Settings(
        config=config_file,
        redis_url=redis_url,
        state_redis_url=cluster.url,
        state_redis_cluster=True,
    )


@pytest.fixture
def on_cluster(split_settings: Settings, state: RedisCluster) -> Iterator[Context]:
    built = build_context(split_settings)
    jobs.install_context(built)
    yield built
    jobs.install_context(None)
    built.redis.close()
    built.queue_redis.close()


def drain_queues(queue_redis: Redis) -> bool:
    """Every queued job, in this process, with a real RQ worker on the queue Redis."""
    queues = [Queue(name, connection=queue_redis) for name in QUEUE_NAMES]
    return SimpleWorker(queues, connection=queue_redis).work(burst=True)


def usage_rows(account_id: str, users: list[int], seats: int) -> list[dict[str, Any]]:
    """A warehouse export's rows: one a day, the last one yesterday."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    days = [yesterday - timedelta(days=back) for back in range(len(users) - 1, -1, -1)]
    return [
        {"account_id": account_id, "date": day.isoformat(), "active_users": count, "seats": seats}
        for day, count in zip(days, users, strict=True)
    ]


def evaluate_dirty(context: Context) -> bool:
    enqueue_dirty_evaluation(context.queue_redis, datetime.now(UTC), 0)
    return drain_queues(context.queue_redis)


def sandbox(context: Context) -> SandboxCrm:
    assert isinstance(context.crm, SandboxCrm)
    return context.crm


def risk_fields(context: Context, crm_id: str) -> tuple[str, str, float]:
    fields = sandbox(context).company_properties(crm_id)
    return fields["churn_risk_level"], fields["churn_risk_reasons"], fields["usage_trend_pct"]


def test_a_state_client_is_the_cluster_and_the_queues_and_adapter_stay_on_one_redis(
    on_cluster: Context, redis_url: str
) -> None:
    assert isinstance(on_cluster.redis, RedisCluster)
    assert not isinstance(on_cluster.queue_redis, RedisCluster)
    assert on_cluster.queue_redis.connection_pool.connection_kwargs["db"] == int(
        redis_url.rsplit("/", 1)[1]
    )


def test_an_imported_drop_is_flagged_and_tasked_once_on_the_cluster_and_again_changes_nothing(
    on_cluster: Context, state: RedisCluster, redis: Redis
) -> None:
    rows = usage_rows("acme", DROPPING, seats=20) + usage_rows("globex", STEADY, seats=12)
    summary = import_rows(state, enumerate(rows, start=2))
    assert (summary.accepted, summary.rejected, summary.accounts) == (98, [], {"acme", "globex"})
    assert waiting.waiting_accounts(state) == {"acme", "globex"}

    assert evaluate_dirty(on_cluster)
    [task] = sandbox(on_cluster).tasks()
    assert task.subject == "Check in with Acme Analytics: product usage is down 60%"
    assert (task.owner_id, task.company_id) == ("owner-ana", "1001")
    assert risk_fields(on_cluster, "1001") == ("high", DROP_REASONS, -60.0)
    assert risk_fields(on_cluster, "1002") == ("none", "", 0.0)
    assert json.loads(state.get(keys.assessment("acme")) or "{}")["level"] == "high"

    waiting.mark_all_accounts_dirty(state)  # the daily run judges every known account again
    assert evaluate_dirty(on_cluster)
    assert [t.subject for t in sandbox(on_cluster).tasks()] == [task.subject]
    assert risk_fields(on_cluster, "1001") == ("high", DROP_REASONS, -60.0)
    assert waiting.waiting_accounts(state) == set()
    assert state.zcard(keys.processing_accounts()) == 0

    # RQ's keys are all on the queue Redis, and no account state is there.
    assert state.keys("rq:*", target_nodes=RedisCluster.PRIMARIES) == []
    assert redis.keys("ci:{acct:*") == []
    assert redis.keys("rq:*")  # the queues and the workers that ran


def test_a_champion_leaving_is_queued_on_one_redis_and_tasked_from_cluster_state(
    on_cluster: Context,
    split_settings: Settings,
    state: RedisCluster,
    webhook_secrets: dict[str, str],
) -> None:
    app = create_app(split_settings, on_cluster.config)
    client = app.test_client()
    secret = webhook_secrets[PEOPLE_SECRET_ENV]
    assert post_signed(client, "/webhooks/job-changes", secret, CHAMPION_LEFT).status_code == 202
    assert Queue(QUEUE_NAMES[0], connection=on_cluster.queue_redis).count == 1
    assert client.get("/healthz").json == {"status": "ok", "redis": "ok", "state_redis": "ok"}
    app.extensions["integration.redis"].close()
    app.extensions["integration.queue_redis"].close()

    assert drain_queues(on_cluster.queue_redis)
    [task] = sandbox(on_cluster).tasks()
    assert task.subject == "Priya Natarajan left Globex: find a new champion"
    assert state.hlen(keys.people_signals("globex")) == 1
    assert drain_queues(on_cluster.queue_redis) is False  # nothing left, nothing doubled
    assert len(sandbox(on_cluster).tasks()) == 1


class KilledError(Exception):
    """The fold consumer dies here, after writing its accounts, before acknowledging."""


def segment_client(split_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Config]:
    """The web app, with Segment configured beside the usage webhook."""
    monkeypatch.setenv("SEGMENT_SECRET", SEGMENT_SECRET)
    config = yaml.safe_load(split_settings.config.read_text())
    config["webhooks"]["segment"] = {"shared_secret_env": "SEGMENT_SECRET"}
    split_settings.config.write_text(yaml.safe_dump(config))
    loaded = read_config(split_settings.config)
    return create_app(split_settings, loaded), loaded


def post_segment(client: Any, messages: list[dict[str, Any]]) -> Any:
    body = json.dumps(messages)
    first = json.dumps(messages[0])
    signature = hmac.new(SEGMENT_SECRET.encode(), first.encode(), hashlib.sha1).hexdigest()
    headers = {"Content-Type": "application/json", "X-Signature": signature}
    return client.post(
        "/webhooks/segment", data=body.replace(json.dumps(messages[0]), first), headers=headers
    )


def test_usage_posted_to_the_webhooks_is_folded_into_cluster_state_and_tasked_once(
    split_settings: Settings,
    state: RedisCluster,
    redis: Redis,
    webhook_secrets: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, config = segment_client(split_settings, monkeypatch)
    context = build_context(split_settings, config)
    jobs.install_context(context)
    client = app.test_client()
    secret = webhook_secrets[USAGE_SECRET_ENV]
    acme = daily_usage("acme", DROPPING, seats=20)
    assert post_signed(client, "/webhooks/usage", secret, acme, msg_id="d-acme").status_code == 202
    globex = daily_usage("globex", STEADY, seats=12)
    assert post_signed(client, "/webhooks/usage", secret, globex).status_code == 202
    viewed = [
        {"type": "track", "event": "Dashboard Viewed", "userId": f"seg-{n}", "messageId": f"m-{n}"}
        | {"context": {"groupId": "initech"}, "timestamp": datetime.now(UTC).isoformat()}
        for n in range(3)
    ]
    assert post_segment(client, viewed).status_code == 202
    assert state.xlen(keys.ingest_stream()) == 3
    assert redis.keys("ci:*") == [LAYOUT_MARK]  # nothing of the ingest on the queue Redis

    # The first consumer folds the Segment entry (its accounts written and marked dirty), then
    # dies before it acknowledges; the next one takes all three entries over, finds the Segment
    # one folded already in its account, and folds the usage.
    monkeypatch.setattr(ingest_stream, "acknowledge", killed)
    with pytest.raises(KilledError):
        fold_backlog(state, context.queue_redis, config, consumer="dies")
    monkeypatch.undo()
    assert sum(state.get(keys.daily_metric("initech", "events")) or b"") == 3
    assert fold_backlog(state, context.queue_redis, config) == len(acme) + len(globex)
    assert state.xlen(keys.ingest_stream()) == 0
    assert waiting.waiting_accounts(state) == {"acme", "globex", "initech"}
    assert sum(state.get(keys.daily_metric("initech", "events")) or b"") == 3

    usage_complete_through_yesterday(state)
    assert evaluate_dirty(context)
    [task] = sandbox(context).tasks()
    assert task.subject == "Check in with Acme Analytics: product usage is down 60%"
    assert risk_fields(context, "1001") == ("high", DROP_REASONS, -60.0)
    assert risk_fields(context, "1002") == ("none", "", 0.0)

    # The same deliveries again: a duplicate at the edge, an event already marked in its account.
    assert post_signed(client, "/webhooks/usage", secret, acme, msg_id="d-acme").status_code == 200
    assert post_segment(client, viewed[:1]).status_code == 202  # a new delivery, an old message
    assert fold_backlog(state, context.queue_redis, config) == 0
    assert sum(state.get(keys.daily_metric("initech", "events")) or b"") == 3
    assert evaluate_dirty(context) is False or len(sandbox(context).tasks()) == 1
    assert len(sandbox(context).tasks()) == 1
    assert state.keys("rq:*", target_nodes=RedisCluster.PRIMARIES) == []
    jobs.install_context(None)
    context.redis.close()
    context.queue_redis.close()
    app.extensions["integration.redis"].close()
    app.extensions["integration.queue_redis"].close()


def killed(*_: Any) -> int:
    raise KilledError


def test_the_fold_process_reads_the_stream_on_a_separate_state_redis(
    redis: Redis, settings: Settings, webhook_secrets: dict[str, str], redis_server_url: str
) -> None:
    """State on its own (single) Redis: the web app accepts there and `integration fold`, given
    both URLs, folds there, never on the queue Redis."""
    with claimed_database(redis_server_url) as state_url:
        split = settings.model_copy(update={"state_redis_url": state_url})
        app = create_app(split, read_config(split.config))
        env = {"REDIS_URL": settings.redis_url, "INTEGRATION_STATE_REDIS_URL": state_url}
        env |= {"INTEGRATION_CONFIG": str(settings.config), "PATH": "/usr/bin:/bin"}
        env |= webhook_secrets | {"INTEGRATION_LOG_LEVEL": "WARNING"}
        body = [{"account_id": "acme", "user_id": "u1", "event": "login"}]
        body[0]["timestamp"] = datetime.now(UTC).isoformat()
        secret = webhook_secrets[USAGE_SECRET_ENV]
        with Redis.from_url(state_url) as state:
            try:
                post = post_signed(app.test_client(), "/webhooks/usage", secret, body)
                assert post.status_code == 202
                assert state.xlen(keys.ingest_stream()) == 1
                done = subprocess.run(  # noqa: S603 - our own argument list
                    [sys.executable, "-m", "integration", "fold", "--burst"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert done.returncode == 0, done.stderr
                assert done.stdout.strip() == "folded 1 event(s)"
                assert state.xlen(keys.ingest_stream()) == 0
                assert sum(state.get(keys.daily_metric("acme", "events")) or b"") == 1
                assert redis.keys("ci:*") == [LAYOUT_MARK]  # the redis fixture's
                assert Queue(QUEUE_NAMES[0], connection=redis).count + len(redis.keys("rq:job:*"))
            finally:
                state.flushdb()
                app.extensions["integration.redis"].close()
