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
from integration.store import keys, rollups

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
    now = datetime.now(UTC)
    # An export holds whole days, except one made today: today's row is still filling up.
    complete = min(max(row.day for row in rows), now.date() - timedelta(days=1))
    payload = [
        {
            "account": row.account_id,
            "day": rollups.day_number(row.day),
            "meta_key": keys.account_meta(row.account_id),
            "seats": row.seats,
            # Seats from a row count as reported at the end of its day, in the same order as the
            # seats live events carry, so an older row never overwrites a newer count.
            "seats_ts": datetime.combine(row.day, datetime.max.time(), UTC).timestamp(),
            "metrics": [
                [name, keys.daily_metric(row.account_id, name), value]
                for name, value in sorted(row.metrics.items())
            ],
        }
        for row in rows
    ]
    placed = int(
        rollups.registered(redis, "import_days.lua")(
            keys=[
                keys.dirty_accounts(),
                keys.known_accounts(),
                keys.rollups_layout(),
                keys.watermarks(),
            ],
            args=[
                now.timestamp(),
                rollups.RECENT_DAYS,
                rollups.OLD_DAYS,
                json.dumps(payload, separators=(",", ":")),
                rollups.LAYOUT,
                rollups.day_number(complete),
            ],
            client=redis,
        )
    )
    if placed < 0:
        raise StorageUnavailableError(rollups.OUTDATED_LAYOUT)
    summary.accepted += placed
    summary.too_old += len(rows) - placed
    summary.accounts.update(row.account_id for row in rows)
    for row in rows:
        summary.metrics.update(row.metrics)
