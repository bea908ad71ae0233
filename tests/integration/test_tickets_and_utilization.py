"""Open tickets and month-ago utilization, folded from usage events into a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis

from integration.config.schema import Metrics
from integration.signals.events import UsageEvent
from integration.store import keys, rollups

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
YESTERDAY = NOW.date() - timedelta(days=1)


def fold(redis: Redis, *events: UsageEvent, now: datetime = NOW) -> None:
    delivery = keys.delivery_seen("usage", repr(events))
    rollups.fold_usage(redis, delivery, list(events), "rq:job:none", Metrics(), now=now)


def ticket(name: str, ticket_id: str, days_ago: float) -> UsageEvent:
    at = NOW - timedelta(days=days_ago)
    return UsageEvent("acme", "support", name, at, properties={"ticket_id": ticket_id})


def open_tickets(redis: Redis) -> tuple[datetime, ...]:
    return rollups.load_history(redis, "acme", NOW, YESTERDAY, 60).open_tickets


def test_a_ticket_is_open_from_its_opening_until_an_event_closes_it(redis: Redis) -> None:
    fold(redis, ticket("ticket_opened", "T-1", 20), ticket("ticket_opened", "T-2", 3))
    assert open_tickets(redis) == (NOW - timedelta(days=20), NOW - timedelta(days=3))
    fold(redis, ticket("support_ticket_closed", "T-1", 1))
    assert open_tickets(redis) == (NOW - timedelta(days=3),)
    history = rollups.load_history(redis, "acme", NOW, YESTERDAY, 30, Metrics().names())
    assert sum(history.daily_metrics["tickets_opened"]) == 2
    assert history.daily_active_users == (0,) * 30  # support work is not product use


def test_a_closing_that_arrives_before_its_opening_keeps_the_ticket_closed(redis: Redis) -> None:
    fold(redis, ticket("ticket_closed", "T-9", 1))
    fold(redis, ticket("ticket_opened", "T-9", 5))
    fold(redis, ticket("ticket_opened", "T-10", 4), ticket("ticket_closed", "T-10", 2))
    fold(redis, ticket("ticket_opened", "T-10", 4))  # sent again by another delivery
    assert open_tickets(redis) == ()


def test_a_ticket_reopened_after_its_closing_is_open_again(redis: Redis) -> None:
    fold(redis, ticket("ticket_opened", "T-3", 9), ticket("ticket_closed", "T-3", 6))
    fold(redis, ticket("ticket_opened", "T-3", 2))
    assert open_tickets(redis) == (NOW - timedelta(days=2),)


def test_an_opening_sent_again_long_after_its_closing_does_not_reopen_it(redis: Redis) -> None:
    fold(redis, ticket("ticket_opened", "T-3", 100), ticket("ticket_closed", "T-3", 90))
    fold(redis, *(ticket("ticket_closed", f"T-{n}", 10) for n in range(10, 60)))
    fold(redis, ticket("ticket_opened", "T-3", 100))
    assert open_tickets(redis) == ()


def test_when_closing_events_began_to_arrive_is_known_to_the_rules(redis: Redis) -> None:
    fold(redis, ticket("ticket_opened", "T-1", 20))
    assert rollups.load_history(redis, "acme", NOW, YESTERDAY, 30).ticket_closings_since is None
    fold(redis, ticket("ticket_closed", "T-7", 1))
    fold(redis, ticket("ticket_closed", "T-8", 0.5))
    since = rollups.load_history(redis, "acme", NOW, YESTERDAY, 30).ticket_closings_since
    assert since == NOW - timedelta(days=1)


def test_a_reopening_that_arrives_before_an_older_closing_stays_open(redis: Redis) -> None:
    fold(redis, ticket("ticket_opened", "T-5", 20))
    fold(redis, ticket("ticket_opened", "T-5", 2))  # reopened
    fold(redis, ticket("ticket_closed", "T-5", 10))  # the first closing, delivered late
    assert open_tickets(redis) == (NOW - timedelta(days=2),)


def test_a_replay_does_not_see_tickets_opened_after_its_date(redis: Redis) -> None:
    fold(redis, ticket("ticket_opened", "T-1", 20), ticket("ticket_opened", "T-2", 3))
    earlier = NOW - timedelta(days=10)
    history = rollups.load_history(redis, "acme", earlier, earlier.date(), 30)
    assert history.open_tickets == (NOW - timedelta(days=20),)


def use(users: range, days_ago: int) -> list[UsageEvent]:
    at = NOW - timedelta(days=days_ago, hours=2)
    return [UsageEvent("acme", f"u{n}", "report_viewed", at, seats=20) for n in users]


def test_users_active_a_month_ago_are_kept_for_the_utilization_change(redis: Redis) -> None:
    for days_ago in range(45, 0, -1):  # as it happens: each day's usage arrives that day
        events = use(range(4 if days_ago > 30 else 12), days_ago)
        fold(redis, *events, now=events[0].occurred_at)
    history = rollups.load_history(redis, "acme", NOW, YESTERDAY, 60)
    assert history.active_users_30d_before == 4  # u0-u3 in the 30 days to 31 days ago
    assert history.active_users_30d == 12


def test_without_a_snapshot_a_month_ago_the_change_is_unknown(redis: Redis) -> None:
    fold(redis, *use(range(4), 10))
    fold(redis, *use(range(6), 1))
    assert rollups.load_history(redis, "acme", NOW, YESTERDAY, 60).active_users_30d_before is None


def test_a_backfill_of_old_history_records_no_month_ago_figure(redis: Redis) -> None:
    # Days long past, replayed now: the per-user record of those days is gone, so the 30 days
    # before each cannot be counted; the figure is unknown rather than too low.
    for days_ago in range(100, 0, -1):
        fold(redis, *use(range(days_ago % 7 + 3), days_ago))
    history = rollups.load_history(redis, "acme", NOW, YESTERDAY, 60)
    assert history.active_users_30d_before is None
