"""`integration import usage FILE`: daily rollups from a warehouse export (CSV or NDJSON).

Columns: account_id, date, active_users, logins, seats, and any further numeric column, which is
a metric of that name. Each bad row is reported with its line number and the reason, and the
rest are imported; values are set rather than added, so importing a file twice changes nothing.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from redis import Redis

from integration.errors import StorageUnavailableError
from integration.signals.limits import account_id_problem
from integration.store import freshness, keys, rollups
from integration.store.cluster import is_cluster

REQUIRED = ("account_id", "date")
NOT_METRICS = frozenset({"account_id", "date", "seats"})
U16_MAX = 65_535
BATCH_ROWS = 500
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class DayRow:
    account_id: str
    day: date
    metrics: dict[str, int]
    seats: int | None


@dataclass
class ImportSummary:
    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    too_old: int = 0


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record) from CSV (with a header) or NDJSON; a broken line gives its error."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() in (".ndjson", ".jsonl", ".json"):
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"not valid JSON: {exc.msg}"
                    continue
                yield number, record if isinstance(record, dict) else "expected a JSON object"
            return
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            yield 1, f"the header lacks {', '.join(missing)}"
            return
        for record in reader:
            yield reader.line_num, dict(record)


def parse_row(record: dict[str, Any], today: date) -> DayRow:
    """One row, or ValueError naming the column and what was wrong."""
    raw = record.get("account_id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)  # a warehouse's numeric id, as NDJSON writes it
    problem = account_id_problem("" if raw is None else raw)
    if problem or not isinstance(raw, str):
        msg = f"account_id: {problem}"
        raise ValueError(msg)
    account = raw.strip()
    try:
        day = date.fromisoformat(str(record.get("date") or "").strip()[:10])
    except ValueError:
        msg = f"date: expected YYYY-MM-DD, got {record.get('date')!r}"
        raise ValueError(msg) from None
    if day > today + timedelta(days=1):
        msg = f"date: {day.isoformat()} is in the future; a warehouse export holds past days"
        raise ValueError(msg)
    metrics = {}
    for name, raw in record.items():
        if name in NOT_METRICS or raw in (None, ""):
            continue
        if not _METRIC_NAME.match(str(name)):
            msg = f"{name}: a metric column must be named in lower_snake_case"
            raise ValueError(msg)
        metrics[str(name)] = _count(str(name), raw, U16_MAX)
    seats_raw = record.get("seats")
    seats = _count("seats", seats_raw, 10_000_000) if seats_raw not in (None, "") else None
    return DayRow(account, day, metrics, seats)


def _count(name: str, raw: Any, maximum: int) -> int:  # noqa: ANN401 - a cell of any type
    try:
        value = float(raw)
    except (TypeError, ValueError):
        msg = f"{name}: expected a whole number, got {raw!r}"
        raise ValueError(msg) from None
    if not value.is_integer() or not 0 <= value <= maximum:
        msg = f"{name}: expected a whole number from 0 to {maximum}, got {raw!r}"
        raise ValueError(msg)
    return int(value)


def import_rows(redis: Redis, records: Iterable[tuple[int, dict[str, Any] | str]]) -> ImportSummary:
    summary = ImportSummary()
    today = datetime.now(UTC).date()
    batch: list[DayRow] = []
    for number, record in records:
        try:
            if isinstance(record, str):
                raise ValueError(record)  # noqa: TRY301 - one path for every bad line
            row = parse_row(record, today)
        except ValueError as exc:
            summary.rejected.append((number, str(exc)))
            continue
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            _write(redis, batch, summary)
            batch = []
    if batch:
        _write(redis, batch, summary)
    return summary


def _write(redis: Redis, rows: list[DayRow], summary: ImportSummary) -> None:
    """One batch: each account's rows in a script over its own keys (one slot of a Redis
    Cluster), then the accounts marked dirty and known, then the import's watermark raised, in
    that order, so an evaluation never takes an account before its rows are in."""
    now = datetime.now(UTC)
    # An export holds whole days, except one made today: today's row is still filling up.
    complete = min(max(row.day for row in rows), now.date() - timedelta(days=1))
    _check_layout(redis)
    by_account: dict[str, list[DayRow]] = {}
    for row in rows:
        by_account.setdefault(row.account_id, []).append(row)
    placed = _place(redis, by_account)
    accounts = list(by_account)
    redis.zadd(keys.dirty_accounts(), dict.fromkeys(accounts, now.timestamp()), gt=True)
    redis.sadd(keys.known_accounts(), *accounts)
    freshness.raise_watermark(redis, freshness.IMPORT, complete)
    summary.accepted += placed
    summary.too_old += len(rows) - placed
    summary.accounts.update(accounts)
    for row in rows:
        summary.metrics.update(row.metrics)


def _check_layout(redis: Redis) -> None:
    """Write rings only into a Redis marked with the current layout; a Redis that knows no
    account yet is marked here (integration/store/layout.py)."""
    stored = redis.get(keys.rollups_layout())
    if stored is None and not redis.exists(keys.known_accounts()):
        redis.set(keys.rollups_layout(), rollups.LAYOUT, nx=True)
        stored = redis.get(keys.rollups_layout())
    if stored is None or keys.text(stored) != rollups.LAYOUT:
        raise StorageUnavailableError(rollups.OUTDATED_LAYOUT)


def _place(redis: Redis, by_account: dict[str, list[DayRow]]) -> int:
    """Run import_days.lua once per account: pipelined on one Redis (one round trip, as one
    script for the batch was); one call each on a cluster, which cannot pipeline scripts."""
    script = rollups.registered(redis, "import_days.lua")
    calls = [_account_call(account_id, rows) for account_id, rows in by_account.items()]
    if is_cluster(redis):
        return sum(int(script(keys=names, args=args)) for names, args in calls)
    pipe = redis.pipeline(transaction=False)
    for names, args in calls:
        script(keys=names, args=args, client=pipe)
    return sum(int(placed) for placed in pipe.execute())


def _account_call(account_id: str, rows: list[DayRow]) -> tuple[list[str], list[Any]]:
    """KEYS: the account's meta, then a ring per metric its rows name; ARGV as in the script."""
    metrics = sorted({name for row in rows for name in row.metrics})
    ring_index = {name: index + 2 for index, name in enumerate(metrics)}  # Lua counts from 1
    payload = [
        {
            "day": rollups.day_number(row.day),
            "seats": row.seats,
            # Seats from a row count as reported at the end of its day, in the same order as the
            # seats live events carry, so an older row never overwrites a newer count.
            "seats_ts": datetime.combine(row.day, datetime.max.time(), UTC).timestamp(),
            "metrics": [
                [name, ring_index[name], value] for name, value in sorted(row.metrics.items())
            ],
        }
        for row in rows
    ]
    ring_keys = [keys.daily_metric(account_id, name) for name in metrics]
    args = [
        0,  # (the batch's time, before: unused)
        rollups.RECENT_DAYS,
        rollups.OLD_DAYS,
        json.dumps(payload, separators=(",", ":")),
        rollups.LAYOUT,
    ]
    return [keys.account_meta(account_id), *ring_keys], args
