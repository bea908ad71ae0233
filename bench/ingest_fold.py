"""The fold half of bench.ingest: how fast `integration fold` consumers fold, and how soon an
accepted event is visible in the rollups under load.

- Drain: clients post 100-event batches for a few seconds with no consumer running; then the
  consumers start and the rate is the events of that backlog over the time from the first entry
  folded to the stream being empty (the consumers' start-up not counted). A backlog drained at
  that rate is the most the consumers sustain with the backlog flat.
- Latency: the consumers run while clients post at a fixed rate (the targets: 50,000 events/s
  over 10 accounts a request, 25,000 with every event from another account); a probe posts one
  event a twentieth of a second for an account of its own and times the 202 to the account
  appearing in the rollups. The backlog is sampled meanwhile: flat means the rate is sustained.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from integration.store import keys

TARGETS = {10: 50_000, 100: 25_000}  # accounts per 100-event request -> events/s (issue 14)
PROBE_EVERY_SECONDS = 0.05


@contextmanager
def consumers(count: int, env: dict[str, str]) -> Iterator[None]:
    processes = [
        subprocess.Popen(  # noqa: S603 - our own argument list, the Procfile's `fold:` line
            [sys.executable, "-m", "integration", "fold"], env=env
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()


def drain_rate(
    port: int,
    redis: Redis,
    env: dict[str, str],
    args: argparse.Namespace,
    accounts: int,
    load: Callable[..., Any],
) -> float:
    """Events/s folded from a backlog accepted beforehand (consumers stopped meanwhile)."""
    redis.unlink(keys.ingest_stream())
    load(port, "/webhooks/usage", 100, accounts, args.backlog_seconds, args.clients)
    entries = int(redis.xlen(keys.ingest_stream()))
    with consumers(args.consumers, env):
        while redis.xlen(keys.ingest_stream()) == entries:
            time.sleep(0.001)
        started = time.perf_counter()
        while redis.xlen(keys.ingest_stream()):
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
    return entries * 100 / elapsed


def probe(
    port: int, redis: Redis, signed: Callable[..., Any], stop: threading.Event
) -> list[float]:
    """Seconds from each probe event's 202 to its account's meta existing in the rollups."""
    latencies, n = [], 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        n += 1
        account = f"probe-{n}-{time.monotonic_ns()}"
        event = {"account_id": account, "user_id": "p", "event": "login"}
        body = json.dumps(event | {"timestamp": datetime.now(UTC).isoformat()}).encode()
        connection.request("POST", "/webhooks/usage", body=body, headers=signed(body, account))
        answer = connection.getresponse()
        answer.read()
        accepted = time.perf_counter()
        if answer.status != 202:
            continue
        while not redis.exists(keys.account_meta(account)) and time.perf_counter() - accepted < 30:
            time.sleep(0.001)
        latencies.append(time.perf_counter() - accepted)
        time.sleep(max(0.0, PROBE_EVERY_SECONDS - (time.perf_counter() - accepted)))
    return latencies


def under_load(
    port: int,
    redis: Redis,
    env: dict[str, str],
    args: argparse.Namespace,
    accounts: int,
    load: Callable[..., Any],
    signed: Callable[..., Any],
) -> None:
    label = f"fold.batch_100_over_{accounts}_accounts"
    redis.unlink(keys.ingest_stream())
    backlog: list[int] = []
    stop = threading.Event()
    found: list[list[float]] = []
    with consumers(args.consumers, env):
        time.sleep(1.0)  # the consumers' start-up
        sampler = threading.Thread(target=_sample, args=(redis, backlog, stop))
        prober = threading.Thread(target=lambda: found.append(probe(port, redis, signed, stop)))
        sampler.start()
        prober.start()
        rate, errors = load(
            port,
            "/webhooks/usage",
            100,
            accounts,
            args.seconds * 2,
            args.clients,
            TARGETS[accounts] / 100,
        )
        stop.set()
        sampler.join()
        prober.join()
    latencies = sorted(found[0]) if found else []
    print(f"{label}.offered_events_per_s", TARGETS[accounts])
    print(f"{label}.accepted_events_per_s", round(rate * 100), "errors", errors)
    third = max(1, len(backlog) // 3)
    print(f"{label}.backlog_entries_first_third_mean", round(statistics.mean(backlog[:third])))
    print(f"{label}.backlog_entries_last_third_mean", round(statistics.mean(backlog[-third:])))
    print(f"{label}.backlog_entries_max", max(backlog))
    if latencies:
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(f"{label}.accepted_to_visible_p50_ms", round(statistics.median(latencies) * 1000))
        print(f"{label}.accepted_to_visible_p95_ms", round(p95 * 1000), "probes", len(latencies))


def _sample(redis: Redis, backlog: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        backlog.append(int(redis.xlen(keys.ingest_stream())))
        time.sleep(0.25)


def measure(
    port: int,
    redis: Redis,
    env: dict[str, str],
    args: argparse.Namespace,
    load: Callable[..., Any],
    signed: Callable[..., Any],
) -> None:
    for accounts in (10, 100):
        rate = drain_rate(port, redis, env, args, accounts, load)
        print(f"fold.batch_100_over_{accounts}_accounts.drained_events_per_s", round(rate))
        under_load(port, redis, env, args, accounts, load, signed)
    print("fold.consumers", args.consumers)
