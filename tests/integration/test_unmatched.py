"""The unmatched list in a real Redis: concurrent recorders lose no count."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from redis import Redis

from integration.store.unmatched import list_unmatched, record_unmatched

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_signals_recorded_at_the_same_time_are_all_counted(redis: Redis) -> None:
    def record(n: int) -> None:
        kind = "account" if n % 2 else "job_change"
        record_unmatched(redis, kind, "acct-404", f"signal-{n}", NOW)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(record, range(200)))
    counts = {entry.kind: entry.count for entry in list_unmatched(redis)}
    assert counts == {"account": 100, "job_change": 100}
