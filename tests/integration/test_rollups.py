"""Daily rollups in a real Redis: every metric counted per account and day, read back intact."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from redis import Redis

from integration.config.schema import Metrics
from integration.signals.events import UsageEvent
from integration.store import folding, keys, rollups

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
METRICS = Metrics(counted={"reports_created": ("report_created", "report_duplicated")})


def event(user: str, name: str, days_ago: int) -> UsageEvent:
    return UsageEvent("acme", user, name, NOW - timedelta(days=days_ago, hours=1))


def test_logins_and_configured_metrics_are_counted_per_day(redis: Redis) -> None:
    events = [
        event("u1", "login", 1),
        event("u1", "report_created", 1),
        event("u2", "signed_in", 1),
        event("u2", "report_duplicated", 0),
        event("u1", "login", 0),
        event("u1", "login", 0),
    ]
    rollups.fold_usage(redis, keys.delivery_seen("usage", "d1"), events, "rq:job:none", METRICS)
    history = rollups.load_history(redis, "acme", NOW, NOW.date(), 3, METRICS.names())
    assert history.daily_active_users == (0, 2, 2)  # u1 and u2 on both days
    assert history.daily_metrics == {
        "events": (0, 3, 3),
        "logins": (0, 2, 2),
        "nps_responses": (0, 0, 0),
        "nps_detractors": (0, 0, 0),
        "tickets_opened": (0, 0, 0),
        "csat_responses": (0, 0, 0),
        "csat_satisfied": (0, 0, 0),
        "reports_created": (0, 1, 1),
    }


def test_a_metric_that_starts_later_reads_zeros_before_it_not_old_slots(redis: Redis) -> None:
    rollups.fold_usage(
        redis, keys.delivery_seen("usage", "d1"), [event("u1", "page", 3)], "rq:job:none", METRICS
    )
    rollups.fold_usage(
        redis,
        keys.delivery_seen("usage", "d2"),
        [event("u1", "report_created", 1)],
        "rq:job:none",
        METRICS,
    )
    history = rollups.load_history(redis, "acme", NOW, NOW.date(), 4, METRICS.names())
    assert history.daily_metrics["reports_created"] == (0, 0, 1, 0)
    assert history.daily_metrics["events"] == (1, 0, 1, 0)


def test_nps_scores_of_six_or_less_count_as_detractors_and_tickets_are_counted(
    redis: Redis,
) -> None:
    events = [
        replace(event(f"u{n}", "nps_submitted", 1), properties={"score": score})
        for n, score in enumerate((9, 6, 3, 7))
    ]
    events.append(event("u9", "ticket_opened", 1))
    rollups.fold_usage(redis, keys.delivery_seen("usage", "d1"), events, "rq:job:none", METRICS)
    history = rollups.load_history(redis, "acme", NOW, NOW.date(), 2, METRICS.names())
    assert history.daily_metrics["nps_responses"] == (4, 0)
    assert history.daily_metrics["nps_detractors"] == (2, 0)
    assert history.daily_metrics["tickets_opened"] == (1, 0)


def test_a_late_event_after_the_days_user_set_expired_does_not_count_its_user_again(
    redis: Redis,
) -> None:
    def fold(delivery: str, user: str) -> None:
        events = [event(user, "login", 5)]
        rollups.fold_usage(redis, keys.delivery_seen("usage", delivery), events, "-", METRICS)

    fold("d1", "u1")
    day = rollups.day_number((NOW - timedelta(days=5, hours=1)).date())
    redis.delete(keys.day_users("acme", day))  # what the set's TTL does a few days later
    fold("d2", "u1")  # the same user, sent again days late under a new delivery id
    history = rollups.load_history(redis, "acme", NOW, NOW.date(), 6, METRICS.names())
    assert history.daily_active_users[0] == 1
    assert history.daily_metrics["logins"][0] == 2  # the event itself still counts


def test_a_backfill_of_an_old_day_counts_its_users(redis: Redis) -> None:
    events = [event("u1", "login", 40), event("u2", "login", 40)]
    rollups.fold_usage(redis, keys.delivery_seen("usage", "d1"), events, "-", METRICS)
    rollups.fold_usage(
        redis, keys.delivery_seen("usage", "d2"), [event("u3", "login", 40)], "-", METRICS
    )
    history = rollups.load_history(redis, "acme", NOW, NOW.date(), 41, METRICS.names())
    assert history.daily_active_users[0] == 3


def test_a_small_teams_daily_users_are_counted_exactly_across_deliveries(redis: Redis) -> None:
    team = [f"user-{n}@example.com" for n in range(12)]
    for delivery, people in enumerate((team[:6], team[3:9], team[6:], team)):
        events = [event(person, "page", 0) for person in people]
        rollups.fold_usage(redis, keys.delivery_seen("usage", f"d{delivery}"), events, "-", METRICS)
    history = rollups.load_history(redis, "acme", NOW, NOW.date(), 1, METRICS.names())
    assert history.daily_active_users == (12,)


def test_an_event_whose_id_was_stored_meanwhile_is_dropped_and_the_rest_folded(
    redis: Redis,
) -> None:
    sent = [replace(event("u1", "page", 0), event_id="m-1"), event("u2", "page", 0)]
    assert folding.fold_usage(redis, "-", sent[:1], METRICS, NOW).events == 1
    folded = folding.fold_usage(redis, keys.delivery_seen("usage", "x"), sent, METRICS, NOW)
    assert (folded.events, folded.taken) == (1, {keys.message_mark("usage", "m-1")})
    history = rollups.load_history(redis, "acme", NOW, NOW.date(), 1, METRICS.names())
    assert history.daily_metrics["events"] == (2,)
    marks = redis.zrange(keys.message_marks("acme"), 0, -1)
    assert marks == [keys.message_mark("usage", "m-1").encode()]
    assert 0 < redis.ttl(keys.message_marks("acme")) <= rollups.EVENT_DEDUPE_SECONDS


def test_a_days_user_record_always_expires_however_many_users_it_holds(redis: Redis) -> None:
    for users in (1, 130, 1500):
        events = [event(f"{users}-u{n}", "page", 0) for n in range(users)]
        delivery = keys.delivery_seen("usage", f"many-{users}")
        rollups.fold_usage(redis, delivery, events, "rq:job:none", METRICS)
        day = rollups.day_number((NOW - timedelta(hours=1)).date())
        assert 0 < redis.ttl(keys.day_users("acme", day)) <= rollups.DAY_USERS_TTL_SECONDS
