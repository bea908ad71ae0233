"""`integration import usage FILE`: CSV and NDJSON into the rollups, idempotent, bad rows named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from redis import Redis

from integration.cli.main import main
from integration.config.schema import Metrics
from integration.config.settings import Settings
from integration.signals.events import UsageEvent
from integration.store import rollups, waiting

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def run_import(settings: Settings, path: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(
        main,
        ["import", "usage", str(path), "--config", str(settings.config)],
        env={"REDIS_URL": settings.redis_url},
    )
    return result.exit_code, result.stdout.splitlines()


def history(redis: Redis, days: int = 3) -> rollups.UsageHistory:
    names = (*Metrics().names(), "reports_created")
    return rollups.load_history(redis, "acme", datetime.now(UTC), YESTERDAY, days, names)


def test_a_csv_export_lands_in_the_rollups_and_a_second_import_changes_nothing(
    tmp_path: Path, settings: Settings, redis: Redis, context: object
) -> None:
    days = [YESTERDAY - timedelta(days=n) for n in (2, 1, 0)]
    csv = tmp_path / "usage.csv"
    csv.write_text(
        "account_id,date,active_users,logins,seats,reports_created\n"
        + "".join(
            f"acme,{day.isoformat()},{10 + n},{20 + n},25,{n}\n" for n, day in enumerate(days)
        )
    )
    code, lines = run_import(settings, csv)
    assert code == 0
    assert lines == [
        "accepted 3 row(s) for 1 account(s); metrics: active_users, logins, reports_created",
        "stored but not used by any rule yet: reports_created (name them under metrics.counted)",
    ]
    run_import(settings, csv)
    imported = history(redis)
    assert imported.daily_active_users == (10, 11, 12)
    assert imported.daily_metrics["logins"] == (20, 21, 22)
    assert imported.daily_metrics["reports_created"] == (0, 1, 2)
    assert (imported.seats, imported.first_day) == (25, days[0])


def test_bad_rows_are_listed_with_line_numbers_and_the_good_ones_imported(
    tmp_path: Path, settings: Settings, redis: Redis, context: object
) -> None:
    ndjson = tmp_path / "usage.ndjson"
    rows = [
        {"account_id": "acme", "date": YESTERDAY.isoformat(), "active_users": 7},
        {"account_id": "", "date": YESTERDAY.isoformat(), "active_users": 7},
        {"account_id": "acme", "date": "23/11/2026", "active_users": 7},
        {"account_id": "acme", "date": YESTERDAY.isoformat(), "active_users": "seven"},
        {"account_id": "acme", "date": YESTERDAY.isoformat(), "logins": 70000},
        {"account_id": "acme", "date": "9999-12-31", "active_users": 1},
        {"account_id": {"a": 1}, "date": YESTERDAY.isoformat(), "active_users": 7},
        {"account_id": "acct\nX-Injected: 1", "date": YESTERDAY.isoformat(), "active_users": 7},
        {"account_id": 42, "date": YESTERDAY.isoformat(), "active_users": 5},
    ]
    ndjson.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    code, lines = run_import(settings, ndjson)
    assert code == 1
    assert lines == [
        "accepted 2 row(s) for 2 account(s); metrics: active_users",
        "rejected 8 row(s):",
        "  line 2: account_id: expected a non-blank account id",
        "  line 3: date: expected YYYY-MM-DD, got '23/11/2026'",
        "  line 4: active_users: expected a whole number, got 'seven'",
        "  line 5: logins: expected a whole number from 0 to 65535, got 70000",
        "  line 6: date: 9999-12-31 is in the future; a warehouse export holds past days",
        "  line 7: account_id: expected a string account id, got dict",
        "  line 8: account_id: expected printable text without control characters, "
        "got 'acct\\nX-Injected: 1'",
        "  line 10: not valid JSON: Expecting property name enclosed in double quotes",
    ]
    assert history(redis, 1).daily_active_users == (7,)


def test_imported_accounts_are_queued_for_evaluation(
    tmp_path: Path, settings: Settings, redis: Redis, context: object
) -> None:
    csv = tmp_path / "usage.csv"
    csv.write_text(f"account_id,date,active_users\nglobex,{YESTERDAY.isoformat()},3\n")
    run_import(settings, csv)
    assert waiting.waiting_accounts(redis) == {"globex"}
    assert redis.keys("rq:job:evaluate-dirty-*")


def test_an_imported_account_is_judged_on_its_imported_users_and_activity(
    tmp_path: Path, settings: Settings, redis: Redis, context: object
) -> None:
    days = [YESTERDAY - timedelta(days=n) for n in range(5)]
    csv = tmp_path / "usage.csv"
    csv.write_text(
        "account_id,date,active_users,seats\n"
        + "".join(f"acme,{day.isoformat()},10,12\n" for day in days)
    )
    run_import(settings, csv)
    result = CliRunner().invoke(
        main,
        ["evaluate", "--config", str(settings.config), "--json"],
        env={"REDIS_URL": settings.redis_url},
    )
    [assessment] = [json.loads(line) for line in result.stdout.splitlines()]
    assert assessment["license_utilization_pct"] == 83.3  # 10 of 12 seats, not 0 of 12
    assert assessment["last_active_date"] == YESTERDAY.isoformat()


def test_an_older_imported_row_does_not_overwrite_newer_live_seats(
    tmp_path: Path, settings: Settings, redis: Redis, context: object
) -> None:
    from integration.store import keys

    live = [UsageEvent("acme", "u1", "login", datetime.now(UTC), seats=50)]
    rollups.fold_usage(redis, keys.delivery_seen("usage", "d1"), live, "rq:job:none", Metrics())
    csv = tmp_path / "usage.csv"
    csv.write_text(f"account_id,date,active_users,seats\nacme,{YESTERDAY.isoformat()},3,10\n")
    run_import(settings, csv)
    assert redis.hget("ci:{acct:acme}:meta", "seats") == b"50"
