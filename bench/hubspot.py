"""HubSpot API cost and the shared rate limit, against a local fake HubSpot.

    python -m bench.hubspot [--accounts 1000] [--workers 4] [--calls-per-worker 30]

1. Calls per 1,000 account updates: the adapter's batched lookups and writes, next to the
   one-request-per-account baseline measured in the same run (target: 10, the batch limit).
2. The shared limit: 4 worker processes send through the adapter while the fake enforces
   HubSpot's burst limit; the busiest window must stay within the configured rate with no 429.
   Baseline in the same run: the same workers with the limit raised 100-fold, which is what
   workers with a limiter each of their own would do.
Uses the Redis at REDIS_URL (an empty database) or a private redis-server.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from typing import Any

from redis import Redis

from adapters.hubspot.adapter import HubSpotCrm
from adapters.hubspot.auth import PrivateAppToken
from adapters.protocol import FieldUpdate
from integration.cli.devredis import dev_database, free_port
from integration.config.schema import HubSpotCrm as HubSpotSettings
from integration.config.schema import HubSpotRateLimit
from integration.config.settings import Settings
from tests.fakes.hubspot_server import FakeHubSpot

RATE = (20, 2)  # requests per seconds: HubSpot's 100/10 s, scaled down so the run is short


def adapter(base_url: str, redis: Redis, requests: int, per_seconds: int) -> HubSpotCrm:
    settings = HubSpotSettings(
        base_url=base_url,
        lookup_cache_seconds=0,
        rate_limit=HubSpotRateLimit(
            requests=requests, per_seconds=per_seconds, search_per_second=100
        ),
    )
    return HubSpotCrm(settings, "product_account_id", PrivateAppToken("test-token"), redis)


def calls_per_accounts(accounts: int, redis: Redis) -> dict[str, float]:
    with FakeHubSpot(validate=False) as hub:
        hub.unique_properties["companies"].add("product_account_id")
        ids = [
            hub.add_company({"name": f"C{n}", "product_account_id": f"a{n}"})
            for n in range(accounts)
        ]
        crm = adapter(hub.base_url, redis, 1_000_000, 1)
        started = time.perf_counter()
        crm.find_accounts([f"a{n}" for n in range(accounts)])
        lookups = len(hub.requests)
        crm.write_fields([FieldUpdate(cid, {"churn_risk_level": "high"}) for cid in ids])
        batched_seconds = time.perf_counter() - started
        writes = len(hub.requests) - lookups
        before = len(hub.requests)
        started = time.perf_counter()
        client = crm.transport.client()
        for cid in ids:  # the baseline: one PATCH per account
            client.crm.companies.basic_api.update(
                company_id=cid,
                simple_public_object_input={"properties": {"churn_risk_level": "low"}},
            )
        single_seconds = time.perf_counter() - started
        one_by_one = len(hub.requests) - before
    scale = 1000 / accounts
    return {
        "hubspot.calls_per_1000_lookups": lookups * scale,
        "hubspot.calls_per_1000_field_updates": writes * scale,
        "hubspot.baseline_calls_per_1000_updates_one_by_one": one_by_one * scale,
        "hubspot.batched_lookup_and_update_s": round(batched_seconds, 3),
        "hubspot.baseline_one_by_one_update_s": round(single_seconds, 3),
    }


def _worker(base_url: str, redis_url: str, requests: int, per_seconds: int, calls: int) -> None:
    crm = adapter(base_url, Redis.from_url(redis_url), requests, per_seconds)
    for n in range(calls):
        crm.find_accounts([f"w{n}-{time.monotonic_ns()}"])  # never cached: one call each


def shared_limit(workers: int, calls: int, redis_url: str, requests: int) -> dict[str, Any]:
    port = free_port()
    fake = subprocess.Popen(  # noqa: S603 - our own argument list
        [
            sys.executable,
            "-m",
            "tests.fakes.hubspot_server",
            "--port",
            str(port),
            "--no-validate",
            "--rate-limit",
            f"{RATE[0]}/{RATE[1]}",
            "--unique",
            "companies.product_account_id",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        announced = fake.stdout.readline().decode() if fake.stdout else ""
        base_url = announced.rsplit(" ", 1)[-1].strip()
        Redis.from_url(redis_url).flushdb()
        started = time.perf_counter()
        processes = [
            multiprocessing.Process(
                target=_worker, args=(base_url, redis_url, requests, RATE[1], calls)
            )
            for _ in range(workers)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - started
        with urllib.request.urlopen(f"{base_url}/__fake__/stats?window={RATE[1]}") as answer:  # noqa: S310 - loopback
            stats = json.load(answer)
    finally:
        fake.terminate()
        fake.wait()
    return {
        "max_in_window": stats["max_in_window"],
        "throttled_429": stats["throttled"],
        "requests": stats["requests"],
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--calls-per-worker", type=int, default=30)
    args = parser.parse_args()
    database = ExitStack()  # an empty database, claimed; flushed and freed at the end
    redis_url = database.enter_context(dev_database(Settings().redis_url))
    redis = Redis.from_url(redis_url)
    try:
        for name, value in calls_per_accounts(args.accounts, redis).items():
            print(name, value)
        limited = shared_limit(args.workers, args.calls_per_worker, redis_url, RATE[0])
        unlimited = shared_limit(args.workers, args.calls_per_worker, redis_url, RATE[0] * 100)
        print("hubspot.rate.configured_per_window", f"{RATE[0]}/{RATE[1]}s")
        print("hubspot.rate.workers", args.workers)
        for label, result in (("shared_limit", limited), ("baseline_no_shared_limit", unlimited)):
            for key, value in result.items():
                print(f"hubspot.rate.{label}.{key}", value)
        print(
            "python",
            platform.python_version(),
            "cpu",
            platform.processor() or platform.machine(),
            "redis",
            redis.info()["redis_version"],
        )
    finally:
        database.close()


if __name__ == "__main__":
    main()
