"""Judging settled history only: source watermarks, the settle time, one evaluation per interval,
and events counted once, against a real Redis and real RQ workers. Time is passed in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry

from adapters.sandbox.adapter import SandboxCrm
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context, read_config
from integration.jobs.queues import EVALUATE, next_interval
from integration.store import freshness, keys, rollups, waiting
from tests.conftest import USAGE_SECRET_ENV, daily_usage, drain, fold, post_signed
from webhooks import edge
from webhooks.app import create_app

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def started(
    settings: Settings,
    settle_seconds: int,
    interval_seconds: int,
    backfill_quiet_seconds: int = 900,
) -> Iterator[Any]:
    """The web app (its test client) and the worker's context with this timing."""
    config = yaml.safe_load(settings.config.read_text())
    config["evaluation"] = {
        "settle_seconds": settle_seconds,
        "interval_seconds": interval_seconds,
        "backfill_quiet_seconds": backfill_quiet_seconds,
    }
    settings.config.write_text(yaml.safe_dump(config))
    context = build_context(settings, read_config(settings.config))
    jobs.install_context(context)
    app = create_app(settings, context.config)
    yield app.test_client()
    app.extensions["integration.redis"].close()
    jobs.install_context(None)
    context.redis.close()


@pytest.fixture
def shipped_timing(settings: Settings, redis: Redis) -> Iterator[Any]:
    """The shipped timing: a minute to settle, one dirty-account evaluation a minute."""
    yield from started(settings, 60, 60)


@pytest.fixture
def unsettled(settings: Settings, redis: Redis) -> Iterator[Any]:
    """No settle time and no wait for a backfill, one dirty-account evaluation a minute."""
    yield from started(settings, 0, 60, 0)


class Clock:
    """The clock of the web app (when a delivery arrived) and of the jobs, moved by the test
    instead of by sleeping."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = datetime.now(UTC)
        monkeypatch.setattr(jobs, "_now", lambda: self.now)
        monkeypatch.setattr(edge, "now", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def evaluated(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every batch of accounts an evaluation judged, in order."""
    batches: list[list[str]] = []
    judge = jobs.evaluate_accounts

    def recording(context: Context, account_ids: Any, now: datetime) -> dict[str, float]:
        batches.append(list(account_ids))
        return judge(context, account_ids, now)

    monkeypatch.setattr(jobs, "evaluate_accounts", recording)
    return batches


def sweep(redis: Redis) -> None:
    """The cron's one-minute sweep, run as the job `rq cron` queues, then the worker."""
    Queue(EVALUATE, connection=redis).enqueue(jobs.sweep_accounts)
    drain(redis)


def usage(client: Any, secrets: dict[str, str], events: list[dict[str, Any]]) -> Any:
    """Post, then fold what was accepted, as the `integration fold` consumer does at once."""
    answer = post_signed(client, "/webhooks/usage", secrets[USAGE_SECRET_ENV], events)
    app = client.application.extensions
    fold(app["integration.redis"], app["integration.config"])
    return answer


def tasks(context: Context) -> list[str]:
    assert isinstance(context.crm, SandboxCrm)
    return [task.subject for task in context.crm.tasks()]


def reasons(redis: Redis, account_id: str) -> list[str]:
    import json

    raw = redis.get(keys.assessment(account_id))
    assert raw is not None, f"{account_id} was never judged"
    return [reason["code"] for reason in json.loads(raw)["reasons"]]


def test_a_source_that_stops_sending_makes_no_account_inactive_or_dropping(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    stopped = datetime.now(UTC) - timedelta(days=20)  # the sender broke 20 days ago
    for account_id in ("acme", "globex"):
        usage(client, webhook_secrets, daily_usage(account_id, [10] * 56, end=stopped))
    assert jobs.evaluate_all_accounts() == 2

    assert tasks(context) == []
    assert reasons(redis, "acme") == reasons(redis, "globex") == []
    last_complete = stopped.date() - timedelta(days=1)
    assert freshness.read_watermarks(redis) == {"usage": last_complete}


def test_an_account_whose_usage_stopped_is_flagged_while_the_source_still_sends(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str], clock: Clock
) -> None:
    # Noon of the day after YESTERDAY, so moving the clock on 15 minutes never crosses
    # midnight (run at 23:50, "15 days" read 14 once it did).
    clock.now = datetime.combine(YESTERDAY + timedelta(days=1), time(12), UTC)
    stopped = clock.now - timedelta(days=15)
    usage(client, webhook_secrets, daily_usage("acme", [10] * 49, end=stopped))
    usage(client, webhook_secrets, daily_usage("globex", [10] * 53))  # up to yesterday
    freshness.raise_watermark(redis, freshness.USAGE, YESTERDAY)  # today's first events came
    clock.advance(901)  # until then, acme's history may be a backfill still arriving

    assert jobs.evaluate_all_accounts() == 2
    # Nobody at all used it: the win-back task speaks to that, not a usage-drop check-in too.
    assert tasks(context) == ["Nobody at Acme Analytics has used the product for 15 days"]
    assert {"inactivity", "usage_drop"} <= set(reasons(redis, "acme"))


@pytest.mark.parametrize(
    ("fed", "expected"),
    [
        ({}, YESTERDAY - timedelta(days=5)),  # no source noted yet: the newest watermark
        ({"usage": 100}, YESTERDAY - timedelta(days=5)),
        ({"segment": 100}, YESTERDAY - timedelta(days=9)),  # Segment is behind: so is the account
        ({"usage": 100, "segment": 95}, YESTERDAY - timedelta(days=9)),  # fed by both: the older
        ({"usage": 100, "segment": 60}, YESTERDAY - timedelta(days=5)),  # Segment left it long ago
    ],
)
def test_an_account_is_judged_up_to_the_watermark_of_the_sources_that_feed_it(
    fed: dict[str, int], expected: date
) -> None:
    base = (YESTERDAY - date(1970, 1, 1)).days
    watermarks = {"usage": base - 5, "segment": base - 9}
    assert freshness.judged_day(fed, watermarks, YESTERDAY) == expected


def test_with_no_watermark_yet_accounts_are_judged_up_to_yesterday() -> None:
    assert freshness.judged_day({}, {}, YESTERDAY) == YESTERDAY
    assert freshness.judged_day({"usage": 10**6}, {"usage": 10**6}, YESTERDAY) == YESTERDAY


def test_an_account_still_receiving_usage_waits_until_it_settles(
    shipped_timing: Any,
    redis: Redis,
    webhook_secrets: dict[str, str],
    clock: Clock,
    evaluated: list[list[str]],
) -> None:
    usage(shipped_timing, webhook_secrets, daily_usage("acme", [10] * 30))
    clock.advance(30)
    drain(redis)
    sweep(redis)
    assert evaluated == []
    assert waiting.waiting_accounts(redis) == {"acme"}
    # Nothing waits forever: a job is scheduled for when it will have settled.
    [follow_up] = ScheduledJobRegistry(EVALUATE, connection=redis).get_job_ids()
    assert follow_up.startswith("evaluate-dirty-")

    clock.advance(30)
    sweep(redis)
    assert evaluated == [["acme"]]
    # The 30 days it got are history: it is judged once more when that has been quiet 900 s.
    clock.advance(900)
    sweep(redis)
    assert evaluated == [["acme"], ["acme"]]
    assert waiting.waiting_accounts(redis) == set()


def test_the_dirty_account_evaluation_runs_at_most_once_per_interval(
    unsettled: Any,
    redis: Redis,
    webhook_secrets: dict[str, str],
    clock: Clock,
    evaluated: list[list[str]],
) -> None:
    clock.now = next_interval(clock.now, 60) + timedelta(seconds=5)  # 5 s into an interval
    interval = int(clock.now.timestamp()) // 60
    usage(unsettled, webhook_secrets, daily_usage("acme", [10] * 30))
    drain(redis)
    assert evaluated == [["acme"]]

    for _ in range(3):  # deliveries, the worker and the sweep, as fast as they come
        clock.advance(10)
        usage(unsettled, webhook_secrets, daily_usage("globex", [10] * 30))
        drain(redis)
        sweep(redis)
    assert evaluated == [["acme"]]
    assert waiting.waiting_accounts(redis) == {"globex"}
    # Nothing waits forever: the deliveries scheduled the next interval's job, and the runs too
    # soon one for the interval after the first run's (its interval is over then).
    assert set(ScheduledJobRegistry(EVALUATE, connection=redis).get_job_ids()) == {
        f"evaluate-dirty-{interval + 1}",
        f"evaluate-dirty-{interval + 2}",
    }

    clock.advance(30)  # 60 s after the first run
    sweep(redis)
    assert evaluated == [["acme"], ["globex"]]


def test_a_job_change_for_an_account_still_settling_waits_for_its_usage(
    shipped_timing: Any,
    redis: Redis,
    webhook_secrets: dict[str, str],
    clock: Clock,
    evaluated: list[list[str]],
) -> None:
    from tests.conftest import PEOPLE_SECRET_ENV

    client = shipped_timing
    usage(client, webhook_secrets, daily_usage("acme", [10] * 30))
    change = {
        "event_id": "clay-9",
        "source": "clay",
        "change_type": "left_company",
        "email": "sam@acme.example",
        "previous_company_domain": "acme.example",
        "relationship_type": "Champion",
    }
    post_signed(client, "/webhooks/job-changes", webhook_secrets[PEOPLE_SECRET_ENV], change)
    drain(redis)
    assert evaluated == []

    clock.advance(61)
    sweep(redis)
    assert evaluated == [["acme"]]


def test_an_event_resent_under_a_new_webhook_id_is_counted_once(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    when = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    event = {"account_id": "acme", "user_id": "u1", "event": "login"}
    first = [event | {"event_id": "ev-1", "timestamp": when.isoformat()}]
    again = [
        event | {"event_id": "ev-1", "timestamp": when.isoformat()},  # re-sent
        event | {"event_id": "ev-2", "timestamp": when.isoformat(), "user_id": "u2"},
        event | {"event_id": "ev-2", "timestamp": when.isoformat(), "user_id": "u2"},  # twice
    ]
    assert usage(client, webhook_secrets, first).json == {
        "status": "accepted",
        "events": 1,
        "accounts": 1,
    }
    # Accepted as sent (less the repeat within the body); the fold drops the re-sent ev-1.
    assert usage(client, webhook_secrets, again).json == {
        "status": "accepted",
        "events": 2,
        "accounts": 1,
    }
    metrics = ("events", "logins")
    history = rollups.load_history(redis, "acme", when, when.date(), 1, metrics)
    assert history.daily_metrics["events"] == history.daily_metrics["logins"] == (2,)
    assert history.daily_active_users == (2,)


def test_events_without_an_id_are_each_counted_as_before(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    when = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    event = {"account_id": "acme", "user_id": "u1", "event": "login", "timestamp": when.isoformat()}
    usage(client, webhook_secrets, [event])
    usage(client, webhook_secrets, [event])
    history = rollups.load_history(redis, "acme", when, when.date(), 1, ("logins",))
    assert history.daily_metrics["logins"] == (2,)


def test_the_import_raises_its_own_watermark_up_to_yesterday(redis: Redis, tmp_path: Path) -> None:
    from integration.store.importer import import_rows, read_records

    today = datetime.now(UTC).date()
    export = tmp_path / "usage.csv"
    rows = [f"acme,{(today - timedelta(days=n)).isoformat()},5,7,10" for n in range(3)]
    export.write_text("account_id,date,active_users,logins,seats\n" + "\n".join(rows) + "\n")
    import_rows(redis, read_records(export))
    yesterday = today - timedelta(days=1)  # not the module's YESTERDAY: midnight may have passed
    assert freshness.read_watermarks(redis) == {"import": yesterday}  # today is not over
    assert (
        redis.hget(keys.account_meta("acme"), "fed:import")
        == str(rollups.day_number(today)).encode()
    )


def test_accounts_left_waiting_by_the_previous_release_are_taken_over_by_the_sweep(
    context: Context, redis: Redis
) -> None:
    waiting.remember_account(redis, "acme")
    redis.sadd(keys.legacy_dirty_accounts(), "acme")
    assert jobs.sweep_accounts() == 1
    assert redis.exists(keys.legacy_dirty_accounts()) == 0
    assert redis.exists(keys.assessment("acme"))


def test_an_imported_history_holds_an_account_back_a_week_at_most() -> None:
    base = (YESTERDAY - date(1970, 1, 1)).days
    watermarks = {"import": base - 5, "usage": base}
    live_began = {"import": base - 5, "usage": base - 2}  # the webhook took over 2 days ago
    assert freshness.judged_day(live_began, watermarks, YESTERDAY) == YESTERDAY - timedelta(days=5)
    live_for_weeks = {"import": base - 30, "usage": base}
    assert freshness.judged_day(live_for_weeks, watermarks, YESTERDAY) == YESTERDAY


def test_a_source_quiet_everywhere_for_over_a_week_holds_no_account_back() -> None:
    base = (YESTERDAY - date(1970, 1, 1)).days
    imported_once = {"import": base - 20}  # and nothing since, while the webhook sends for others
    watermarks = {"import": base - 20, "usage": base}
    assert freshness.judged_day(imported_once, watermarks, YESTERDAY) == YESTERDAY
    fed_by_both = {"import": base - 20, "usage": base - 19}
    assert freshness.judged_day(fed_by_both, watermarks, YESTERDAY) == YESTERDAY
    week = {"import": base - 7}  # a week behind: still feeding
    watermarks = {"import": base - 7, "usage": base}
    assert freshness.judged_day(week, watermarks, YESTERDAY) == YESTERDAY - timedelta(days=7)


@pytest.mark.parametrize("days_down", [8, 30])
def test_a_live_source_down_for_over_a_week_holds_the_accounts_it_feeds_back_while_down(
    days_down: int,
) -> None:
    """Segment keeps sending for other accounts; the webhook, the only source of this account,
    has been down `days_down` days: the days since have not arrived, and read as no collapse.
    An import as far behind (a one-off of history) holds its account back no longer."""
    base = (YESTERDAY - date(1970, 1, 1)).days
    for live in ("usage", "segment"):
        other = "segment" if live == "usage" else "usage"
        fed = {live: base - days_down + 1}  # its last complete day is a day before its newest
        watermarks = {live: base - days_down, other: base}
        expected = YESTERDAY - timedelta(days=days_down)
        assert freshness.judged_day(fed, watermarks, YESTERDAY) == expected
    imported = {"import": base - days_down}
    watermarks = {"import": base - days_down, "usage": base}
    assert freshness.judged_day(imported, watermarks, YESTERDAY) == YESTERDAY


def test_an_account_whose_only_live_source_is_down_is_not_flagged_while_another_source_sends(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str], clock: Clock
) -> None:
    stopped = datetime.now(UTC) - timedelta(days=20)  # the webhook sender broke 20 days ago
    usage(client, webhook_secrets, daily_usage("acme", [10] * 56, end=stopped))
    freshness.raise_watermark(redis, freshness.SEGMENT, YESTERDAY)  # Segment sends for others
    clock.advance(901)  # long past any backfill: only the outage holds acme back

    assert jobs.evaluate_all_accounts() == 1
    assert tasks(context) == []
    assert reasons(redis, "acme") == []


def test_an_account_imported_once_is_judged_as_of_the_live_watermark_and_flagged_inactive(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str], tmp_path: Path
) -> None:
    from integration.store.importer import import_rows, read_records

    imported = YESTERDAY - timedelta(days=20)  # its history was imported 20 days ago, no more
    export = tmp_path / "usage.csv"
    rows = [f"acme,{(imported - timedelta(days=n)).isoformat()},8,12,10" for n in range(60)]
    export.write_text("account_id,date,active_users,logins,seats\n" + "\n".join(rows) + "\n")
    import_rows(redis, read_records(export))
    usage(client, webhook_secrets, daily_usage("globex", [10] * 53))  # live, up to yesterday
    freshness.raise_watermark(redis, freshness.USAGE, YESTERDAY)  # today's first events came

    assert jobs.evaluate_all_accounts() == 2
    assert "inactivity" in reasons(redis, "acme")
    assert reasons(redis, "globex") == []


def test_users_active_after_the_judged_day_still_count_as_using_their_seats(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str], clock: Clock
) -> None:
    """16 of 20 seats used in 30 days; the daily run at 05:15 judges a day behind yesterday
    (no event of today yet), and yesterday's users still count."""
    clock.now = clock.now.replace(hour=5, minute=15, second=0, microsecond=0)
    events = []
    for back in range(40):  # 8 users one day, 8 others the next
        day = (clock.now - timedelta(days=1 + back)).replace(hour=12, minute=0)
        group = back % 2 * 8
        events += [
            {"account_id": "initech", "user_id": f"u{user}", "event": "login", "seats": 20}
            | {"timestamp": day.isoformat()}
            for user in range(group, group + 8)
        ]
    usage(client, webhook_secrets, events)
    clock.advance(61)
    assert jobs.evaluate_all_accounts() == 1
    two_days_ago = clock.now.date() - timedelta(days=2)  # the clock's, whatever the hour now
    assert freshness.read_watermarks(redis) == {"usage": two_days_ago}
    assert "license_utilization" not in reasons(redis, "initech")


def test_two_accounts_numbering_events_alike_are_both_counted_and_marks_last_a_day(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    when = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    sent = [
        {"account_id": account, "user_id": "u1", "event": "login", "event_id": "1"}
        | {"timestamp": when.isoformat()}
        for account in ("acme", "globex")
    ]
    usage(client, webhook_secrets, sent[:1])
    assert usage(client, webhook_secrets, sent[1:]).json == {
        "status": "accepted",
        "events": 1,
        "accounts": 1,
    }
    for account in ("acme", "globex"):
        history = rollups.load_history(redis, account, when, when.date(), 1, ("logins",))
        assert history.daily_metrics["logins"] == (1,)
    for account in ("acme", "globex"):  # each account's marks, kept a day or so
        assert redis.zcard(keys.message_marks(account)) == 1
        assert 0 < redis.ttl(keys.message_marks(account)) <= 26 * 3600
