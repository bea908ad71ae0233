"""A daily evaluation of many accounts with 400 days of history: time, peak memory, Redis bytes.

    python -m bench.evaluation [--accounts 100000] [--batch 200]

Fills an empty Redis database with `--accounts` accounts, each with 400 days of four metrics
(active users, events, logins, one configured counter) written straight into the day rings, then
times what the daily job does per batch: read the rollups and people signals (one round trip per
batch) and run every risk rule. CRM writes are not included: they are bounded by the CRM's API
(10 HubSpot or 5 Salesforce calls per 1,000 accounts, see bench.hubspot / bench.salesforce).
Baseline in the same run: the same reads with no rules (the Redis floor). Target (issue 6):
under 60 s for 100,000 accounts; memory at most 4 KB per account.
"""

from __future__ import annotations

import argparse
import platform
import random
import resource
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from redis import Redis

from integration.cli.devredis import dev_database
from integration.config.schema import Metrics, RiskConfig
from integration.config.settings import Settings
from integration.risk.assess import assess, history_days_needed, other_days_needed
from integration.signals.accounts import AccountState
from integration.signals.events import UsageEvent
from integration.store import keys, layout, rollups

HISTORY_DAYS = 400
METRICS = Metrics(counted={"reports_created": ("report_created",)})
NOW = datetime(2026, 11, 23, 6, tzinfo=UTC)


def fill(redis: Redis, accounts: int, seed: int) -> None:
    rng = random.Random(seed)
    last = rollups.day_number(NOW.date() - timedelta(days=1))
    pipe = redis.pipeline(transaction=False)
    for n in range(accounts):
        account = f"acct-{n:06d}"
        level = rng.randint(3, 60)
        daily = [max(0, round(rng.gauss(level, level**0.5))) for _ in range(HISTORY_DAYS)]
        if n % 10 == 0:  # a tenth of the accounts declined over the last two weeks
            daily[-14:] = [v // 3 for v in daily[-14:]]
        meta = {
            "first_day": last - HISTORY_DAYS + 1,
            "last_day": last,
            "seats": level + 10,
            "last_active": NOW.timestamp() - 3600,
        }
        for name, series in (
            ("active_users", daily),
            ("events", [v * 5 for v in daily]),
            ("logins", [v * 2 for v in daily]),
            ("reports_created", [v // 4 for v in daily]),
        ):
            pipe.set(keys.daily_metric(account, name), rollups.ring_bytes(series, last))
            meta[f"last_day:{name}"] = last
        pipe.hset(keys.account_meta(account), mapping=meta)
        pipe.sadd(keys.known_accounts(), account)
        if n % 500 == 499:
            pipe.execute()
    pipe.execute()


def bytes_per_account(redis: Redis) -> int:
    account = "acct-000001"
    names = [keys.daily_metric(account, m) for m in METRICS.names() if m != "logins"]
    names += [keys.daily_metric(account, "logins"), keys.account_meta(account)]
    return sum(int(redis.memory_usage(name) or 0) for name in names)


def live_bytes_per_account(redis: Redis, users: int, samples: int = 5) -> int:
    """Every key of an account fed 30 days of usage through the real ingest fold: the day rings
    and meta, plus the per-user last-seen set and the day user sets still alive (the rings-only
    figure above leaves those out). Delivery marks are shared by all accounts and not counted."""
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    # Day user sets live DAY_USERS_TTL after their last write: older ones would have expired.
    oldest_alive = rollups.day_number(today.date()) - rollups.DAY_USERS_TTL_SECONDS // 86400
    total = 0
    for n in range(samples):
        account = f"live-{users}-{n}"
        for days_ago in range(30, -1, -1):
            at = today - timedelta(days=days_ago)
            events = [
                UsageEvent(account, f"user-{u:04d}@example.com", name, at)
                for u in range(users)
                for name in ("login", "report_created", "page")
            ]
            delivery = keys.delivery_seen("bench", f"{account}-{days_ago}")  # one per day
            rollups.fold_usage(redis, delivery, events, "rq:job:none", METRICS)
        pattern = f"{keys.PREFIX}:{keys.account_tag(account)}:*"
        alive = [
            key
            for key in redis.scan_iter(match=pattern)
            if b":users:" not in key or int(key.rsplit(b":", 1)[1]) >= oldest_alive
        ]
        total += sum(int(redis.memory_usage(key, samples=0) or 0) for key in alive)
    return total // samples


def active_user_count_error(redis: Redis, users: int, trials: int = 10) -> int:
    """The largest miss of a day's active-user count (a HyperLogLog) over `trials` accounts fed
    `users` distinct users in deliveries of 100 events that overlap by half."""
    at = datetime.now(UTC) - timedelta(hours=1)
    worst = 0
    for trial in range(trials):
        account = f"count-{users}-{trial}"
        people = [f"{trial}-{n}@example.com" for n in range(users)]
        for start in range(0, users, 50):
            events = [UsageEvent(account, p, "page", at) for p in people[start : start + 100]]
            delivery = keys.delivery_seen("bench", f"{account}-{start}")
            rollups.fold_usage(redis, delivery, events, "rq:job:none", METRICS)
        history = rollups.load_history(redis, account, at, at.date(), 1)
        worst = max(worst, abs(history.daily_active_users[-1] - users))
    return worst


def run(redis: Redis, accounts: int, batch: int, with_rules: bool) -> tuple[float, int]:
    rules = RiskConfig()
    days, other_days = history_days_needed(rules), other_days_needed(rules)
    ids = [f"acct-{n:06d}" for n in range(accounts)]
    flagged = 0
    started = time.perf_counter()
    for start in range(0, accounts, batch):
        chunk = ids[start : start + batch]
        histories = rollups.load_histories(
            redis, chunk, NOW, NOW.date() - timedelta(days=1), days, METRICS.names(), other_days
        )
        pipe = redis.pipeline(transaction=False)
        for account in chunk:
            pipe.hvals(keys.people_signals(account))
        pipe.execute()
        if with_rules:
            for account in chunk:
                result = assess(AccountState(account, histories[account]), rules, NOW)
                flagged += any(r.code == "usage_drop" for r in result.reasons)
    return time.perf_counter() - started, flagged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    database = ExitStack()  # an empty database, claimed; flushed and freed at the end
    redis = Redis.from_url(database.enter_context(dev_database(Settings().redis_url)))
    try:
        layout.prepare(redis)  # an empty database: marked with the current layout
        started = time.perf_counter()
        fill(redis, args.accounts, args.seed)
        print("evaluation.fill_s", round(time.perf_counter() - started, 1))
        print("evaluation.redis_bytes_per_account_4_metrics", bytes_per_account(redis))
        for users in (10, 50):
            figure = live_bytes_per_account(redis, users)
            print(f"evaluation.redis_bytes_per_live_account_{users}_users", figure)
        for users in (10, 50, 300, 1000):
            miss = active_user_count_error(redis, users)
            print(f"evaluation.active_users_worst_miss_of_{users}", miss)
        floor_s, _ = run(redis, args.accounts, args.batch, with_rules=False)
        full_s, flagged = run(redis, args.accounts, args.batch, with_rules=True)
        print("evaluation.accounts", args.accounts)
        print("evaluation.daily_run_s", round(full_s, 1))
        print("evaluation.baseline_reads_only_s", round(floor_s, 1))
        print("evaluation.accounts_per_s", round(args.accounts / full_s))
        print("evaluation.accounts_flagged_usage_drop", flagged)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("evaluation.peak_rss_mb", round(peak_kb / 1024, 1))
        print("python", platform.python_version(), "redis", redis.info()["redis_version"])
    finally:
        database.close()


if __name__ == "__main__":
    main()
