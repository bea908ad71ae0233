"""Ingest: /webhooks/usage next to the durable-acceptance floor and a bare endpoint, then the fold.

    python -m bench.ingest [--seconds 4] [--clients 4] [--rounds 3] [--consumers 2]

Accept: the three apps run under gunicorn with the same settings (2 workers, 4 threads,
keep-alive) and alternate, round after round: bare Flask + one INCR (bench/bare_app.py), the floor
(bench/floor_app.py: signature, pydantic, one pipelined SET NX + XADD) and /webhooks/usage. Clients
are separate processes on keep-alive connections sending requests signed beforehand, each with its
own webhook-id, so every request is accepted work. No fold consumer runs meanwhile (the floor's
stream is not consumed either); both streams are emptied between runs. Target (issue 14): at least
0.9 of the floor, single events and 100-event batches alike.

Fold (bench/ingest_fold.py): the sustained rate of `integration fold` consumers, measured by
draining a backlog accepted beforehand, and the p95 from a 202 to the event visible in the
rollups while clients post at a fixed rate with the consumers running (the backlog printed).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import yaml
from redis import Redis

from bench import floor_app, ingest_fold
from integration.cli.devredis import dev_database, free_port
from integration.config.settings import Settings
from integration.store import keys

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
GUNICORN = [
    "--workers",
    "2",
    "--threads",
    "4",
    "--worker-class",
    "gthread",
    "--keep-alive",
    "5",
    "--log-level",
    "warning",
]


def signed(body: bytes, msg_id: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "content-type": "application/json",
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def events(count: int, client: int, n: int, accounts: int) -> bytes:
    """A body of `count` events spread over `accounts` accounts (of 5,000 in all)."""
    now = datetime.now(UTC).isoformat()
    batch = [
        {
            "account_id": f"acct-{(client * 7919 + n * 31 + k % accounts) % 5000}",
            "user_id": f"u{k % 40}",
            "event": "login" if k % 5 == 0 else "report_viewed",
            "timestamp": now,
        }
        for k in range(count)
    ]
    return json.dumps(batch[0] if count == 1 else batch).encode()


def client(  # noqa: PLR0913 - one process's whole job
    port: int,
    path: str,
    batch: int,
    accounts: int,
    seconds: float,
    index: int,
    results: multiprocessing.Queue,  # type: ignore[type-arg]
    per_second: float = 0,
) -> None:
    prepared = []
    for n in range(4000):
        body = events(batch, index, n, accounts) if batch else b"{}"
        prepared.append((body, signed(body, f"msg_{index}_{n}_{secrets.token_hex(4)}")))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done = errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        if per_second:  # paced: the n-th request goes at n / per_second
            time.sleep(max(0.0, started + (done + errors) / per_second - time.perf_counter()))
        body, headers = prepared[done % len(prepared)]
        if done >= len(prepared):  # reuse bodies with fresh ids once the prepared ones run out
            headers = signed(body, f"msg_{index}_{done}_{secrets.token_hex(4)}")
        connection.request("POST", path, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status == 202:
            done += 1
        else:
            errors += 1
    results.put((done, errors))


def load(  # noqa: PLR0913
    port: int,
    path: str,
    batch: int,
    accounts: int,
    seconds: float,
    clients: int,
    per_second: float = 0,
) -> tuple[float, int]:
    """Requests/s accepted (202) by `clients` processes, and how many were not; paced at
    `per_second` requests in all when given."""
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    processes = [
        multiprocessing.Process(
            target=client,
            args=(port, path, batch, accounts, seconds, i, results, per_second / clients),
        )
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    totals = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return sum(d for d, _ in totals) / seconds, sum(e for _, e in totals)


def serve(app: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own argument list
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN, app],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
            return process, port
        except OSError:
            time.sleep(0.1)
    msg = f"{app} did not start"
    raise RuntimeError(msg)


RUNS = [  # label, app, path, events per request, accounts per request
    ("bare_flask_one_round_trip", "bare", "/bare", 0, 1),
    ("floor_single_event", "floor", "/floor", 1, 1),
    ("usage_single_event", "usage", "/webhooks/usage", 1, 1),
    # A backend flushing its queue: the batch's events from a handful of accounts.
    ("floor_batch_100_over_10_accounts", "floor", "/floor", 100, 10),
    ("usage_batch_100_over_10_accounts", "usage", "/webhooks/usage", 100, 10),
    # The worst case: every event of the batch from another account.
    ("floor_batch_100", "floor", "/floor", 100, 100),
    ("usage_batch_100", "usage", "/webhooks/usage", 100, 100),
]


def bench_env(redis_url: str) -> dict[str, str]:
    workdir = Path("var/bench")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "ingest.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "crm": {"kind": "sandbox", "sandbox": {"path": str(workdir / "crm.sqlite3")}},
                "webhooks": {
                    "usage": {"secret_env": "BENCH_SECRET"},
                    "job_changes": {"secret_env": "BENCH_SECRET"},
                },
            }
        )
    )
    return dict(
        os.environ,
        REDIS_URL=redis_url,
        INTEGRATION_CONFIG=str(config),
        BENCH_SECRET=SECRET,
        INTEGRATION_LOG_LEVEL="WARNING",
    )


def empty_streams(redis: Redis) -> None:
    redis.unlink(keys.ingest_stream(), floor_app.STREAM)


def accept_rates(
    servers: dict[str, tuple[subprocess.Popen[bytes], int]], redis: Redis, args: argparse.Namespace
) -> dict[str, list[float]]:
    """Each run's requests/s per round, the runs alternating (on a shared machine the speed
    drifts by half within minutes, so each ratio compares runs seconds apart)."""
    load(servers["bare"][1], "/bare", 0, 1, 1.0, args.clients)  # warm-up
    load(servers["floor"][1], "/floor", 1, 1, 1.0, args.clients)
    load(servers["usage"][1], "/webhooks/usage", 1, 1, 1.0, args.clients)
    rates: dict[str, list[float]] = {label: [] for label, *_ in RUNS}
    for _ in range(args.rounds):
        for label, app, path, batch, accounts in RUNS:
            empty_streams(redis)
            rate, errors = load(servers[app][1], path, batch, accounts, args.seconds, args.clients)
            rates[label].append(rate)
            if errors:
                print(f"ingest.{label}.errors", errors)
    empty_streams(redis)
    return rates


def print_accept(rates: dict[str, list[float]]) -> None:
    for label, _, _, batch, _ in RUNS:
        rate = statistics.median(rates[label])
        print(f"ingest.{label}.requests_per_s", round(rate))
        if batch > 1:
            print(f"ingest.{label}.events_per_s", round(rate * batch))
    for case in ("single_event", "batch_100_over_10_accounts", "batch_100"):
        ratios = [
            usage / floor
            for usage, floor in zip(rates[f"usage_{case}"], rates[f"floor_{case}"], strict=True)
        ]
        print(f"ingest.usage_{case}.vs_floor", round(statistics.median(ratios), 2))
        print(f"ingest.usage_{case}.vs_floor_each_round", [round(r, 2) for r in ratios])
    bare = rates["bare_flask_one_round_trip"]
    floor = [f / b for f, b in zip(rates["floor_single_event"], bare, strict=True)]
    print("ingest.floor_single_event.vs_bare_flask", round(statistics.median(floor), 2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--backlog-seconds", type=float, default=6)
    parser.add_argument("--skip-accept", action="store_true")
    args = parser.parse_args()
    database = ExitStack()  # an empty database, claimed; flushed and freed at the end
    redis_url = database.enter_context(dev_database(Settings().redis_url))
    redis = Redis.from_url(redis_url)
    env = bench_env(redis_url)
    servers = {
        "bare": serve("bench.bare_app:create_app()", env),
        "floor": serve("bench.floor_app:create_app()", env),
        "usage": serve("webhooks.app:create_app()", env),
    }
    try:
        if not args.skip_accept:
            print_accept(accept_rates(servers, redis, args))
        ingest_fold.measure(servers["usage"][1], redis, env, args, load, signed)
        print(
            "python",
            platform.python_version(),
            "cpus",
            os.cpu_count(),
            "redis",
            redis.info()["redis_version"],
        )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
        redis.close()
        database.close()


if __name__ == "__main__":
    main()
