"""A metric's two rings in a real Redis: recent days exact, older days within 3%, fixed size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import Redis

from integration.config.schema import Metrics
from integration.signals.events import UsageEvent
from integration.store import importer, keys, rollups

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
TODAY = NOW.date()


def fold(redis: Redis, days_ago: int, count: int, name: str = "report_viewed") -> None:
    at = NOW - timedelta(days=days_ago, hours=1)
    events = [UsageEvent("acme", "u1", name, at)] * count
    delivery = keys.delivery_seen("usage", f"{days_ago}-{count}-{name}")
    rollups.fold_usage(redis, delivery, events, "rq:job:none", Metrics())


def events_history(redis: Redis, days: int) -> tuple[int, ...]:
    return rollups.load_history(redis, "acme", NOW, TODAY, days, ("events",)).daily_events


def test_the_scripts_code_for_an_old_day_is_the_one_python_decodes(redis: Redis) -> None:
    every_code = "local out = {} for v = 0, 65535 do out[v + 1] = encode(v) end return out"
    prelude = (Path(rollups.__file__).parent / "ring.lua").read_text(encoding="utf-8")
    codes = redis.eval(prelude + every_code, 0, "", rollups.RECENT_DAYS, rollups.OLD_DAYS)
    assert codes == [rollups.encode(value) for value in range(65536)]
    for value, code in enumerate(codes):
        assert abs(rollups.DECODE[code] - value) <= value / 32


def test_recent_days_read_back_exact_and_older_days_within_three_percent(redis: Redis) -> None:
    counts = {days_ago: 40 + (days_ago * 37) % 300 for days_ago in range(rollups.RING_DAYS)}
    for days_ago in sorted(counts, reverse=True):  # oldest first, as live usage arrives
        fold(redis, days_ago, counts[days_ago])
    read = events_history(redis, rollups.RING_DAYS)
    expected = tuple(counts[days_ago] for days_ago in range(rollups.RING_DAYS - 1, -1, -1))
    recent = rollups.RECENT_DAYS
    assert read[-recent:] == expected[-recent:]
    assert read[:-recent] != expected[:-recent]  # rounded: some codes stand for nearby counts
    for got, sent in zip(read[:-recent], expected[:-recent], strict=True):
        assert abs(got - sent) <= sent / 32
    users = rollups.load_history(redis, "acme", NOW, TODAY, rollups.RING_DAYS).daily_active_users
    assert users == (1,) * rollups.RING_DAYS


def test_gaps_in_usage_read_as_zeros_in_both_rings(redis: Redis) -> None:
    fold(redis, 400, 40)
    fold(redis, 200, 100)
    fold(redis, 0, 3)
    read = events_history(redis, rollups.RING_DAYS)
    by_days_ago = {rollups.RING_DAYS - 1 - n: value for n, value in enumerate(read) if value}
    assert by_days_ago == {400: 40, 200: 100, 0: 3}  # 40 and 100 have exact codes


def test_a_gap_longer_than_both_rings_clears_them(redis: Redis) -> None:
    fold(redis, 1000, 7)
    fold(redis, 0, 2)
    assert sum(events_history(redis, rollups.RING_DAYS)) == 2


def test_a_late_event_for_a_day_in_the_old_ring_is_added_to_it(redis: Redis) -> None:
    fold(redis, 0, 1)
    fold(redis, 250, 3)
    fold(redis, 250, 2, name="report_exported")
    assert events_history(redis, 251)[0] == 5


def test_importing_old_days_twice_changes_nothing(redis: Redis) -> None:
    rows = [
        (
            line,
            {
                "account_id": "acme",
                "date": str(TODAY - timedelta(days=days_ago)),
                "active_users": "12",
                "logins": "1000",
            },
        )
        for line, days_ago in enumerate((300, 299, 1), start=2)
    ]
    importer.import_rows(redis, rows)
    first = rollups.load_history(redis, "acme", NOW, TODAY, 301, ("logins",))
    importer.import_rows(redis, rows)
    fold(redis, 0, 4)
    again = rollups.load_history(redis, "acme", NOW, TODAY, 301, ("logins",))
    assert again.daily_metrics["logins"] == first.daily_metrics["logins"]
    assert first.daily_metrics["logins"][:2] == (992, 992)  # 1,000 rounded to its code
    assert first.daily_metrics["logins"][-2] == 1000  # the recent ring is exact
    assert again.daily_active_users[:2] == (12, 12)


def test_a_metric_costs_the_same_bytes_however_many_days_wrote_it(redis: Redis) -> None:
    ring = keys.daily_metric("acme", "events")
    fold(redis, 200, 1)
    after_one_day = redis.memory_usage(ring) or 0
    for days_ago in range(199, -1, -1):
        fold(redis, days_ago, 1)
    assert redis.strlen(ring) == 2 * rollups.RECENT_DAYS + rollups.OLD_DAYS == 630
    # The allocator's rounding differs (jemalloc 720 bytes, libc malloc 728): compare, don't pin.
    assert redis.memory_usage(ring) == after_one_day <= 768
