"""Ingest throughput of /webhooks/usage next to a bare Flask endpoint with one Redis round trip.

    python -m bench.ingest [--seconds 4] [--clients 4] [--rounds 3]

Both apps run under gunicorn with the same settings (2 workers, 4 threads, keep-alive). Clients
are separate processes on keep-alive connections sending requests signed beforehand, each with
its own webhook-id, so every request is accepted work (not a duplicate). Targets (issue 6): a
single-event signed request reaches at least 90% of the bare endpoint's requests/s; batches of
100 events reach at least 50,000 events/s accepted.
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

from integration.cli.devredis import dev_database, free_port
from integration.config.settings import Settings

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


def client(
    port: int,
    path: str,
    batch: int,
    accounts: int,
    seconds: float,
    index: int,
    results: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    prepared = []
    for n in range(4000):
        body = events(batch, index, n, accounts) if batch else b"{}"
        prepared.append((body, signed(body, f"msg_{index}_{n}_{secrets.token_hex(4)}")))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done = errors = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
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


def load(
    port: int, path: str, batch: int, accounts: int, seconds: float, clients: int
) -> tuple[float, int]:
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    processes = [
        multiprocessing.Process(
            target=client, args=(port, path, batch, accounts, seconds, i, results)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    database = ExitStack()  # an empty database, claimed; flushed and freed at the end
    redis_url = database.enter_context(dev_database(Settings().redis_url))
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
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        INTEGRATION_CONFIG=str(config),
        BENCH_SECRET=SECRET,
        INTEGRATION_LOG_LEVEL="WARNING",
    )
    runs = [  # label, app, path, events per request, accounts per request
        ("bare_flask_one_round_trip", "bare", "/bare", 0, 1),
        ("usage_single_event", "usage", "/webhooks/usage", 1, 1),
        # The worst case: every event of the batch from another account.
        ("usage_batch_100", "usage", "/webhooks/usage", 100, 100),
        # A backend flushing its queue: the batch's events from a handful of accounts.
        ("usage_batch_100_over_10_accounts", "usage", "/webhooks/usage", 100, 10),
    ]
    # Both apps stay up and the runs alternate, round after round: on a shared machine the
    # speed drifts by half within minutes, so each ratio compares runs seconds apart and the
    # median of the rounds is reported.
    servers = {
        "bare": serve("bench.bare_app:create_app()", env),
        "usage": serve("webhooks.app:create_app()", env),
    }
    rates: dict[str, list[float]] = {label: [] for label, *_ in runs}
    try:
        load(servers["bare"][1], "/bare", 0, 1, 1.0, args.clients)  # warm-up
        load(servers["usage"][1], "/webhooks/usage", 1, 1, 1.0, args.clients)
        for _ in range(args.rounds):
            for label, app, path, batch, accounts in runs:
                rate, errors = load(
                    servers[app][1], path, batch, accounts, args.seconds, args.clients
                )
                rates[label].append(rate)
                if errors:
                    print(f"ingest.{label}.errors", errors)
        for label, _, _, batch, _ in runs:
            rate = statistics.median(rates[label])
            print(f"ingest.{label}.requests_per_s", round(rate))
            if batch > 1:
                print(f"ingest.{label}.events_per_s", round(rate * batch))
        ratios = [
            usage / bare
            for usage, bare in zip(
                rates["usage_single_event"], rates["bare_flask_one_round_trip"], strict=True
            )
        ]
        print("ingest.usage_single_event.vs_bare_flask", round(statistics.median(ratios), 2))
        print("ingest.usage_single_event.vs_bare_flask_each_round", [round(r, 2) for r in ratios])
        print(
            "python",
            platform.python_version(),
            "cpus",
            os.cpu_count(),
            "redis",
            Redis.from_url(redis_url).info()["redis_version"],
        )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
        database.close()


if __name__ == "__main__":
    main()
