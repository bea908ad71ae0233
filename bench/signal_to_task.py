"""Signal to task: from a job-change webhook's 202 to the task in the sandbox CRM, with and
without usage ingest at load in the same run.

    python -m bench.signal_to_task [--signals 40] [--clients 3] [--workers 1]

The Procfile's own processes (web, worker, cron) run on a claimed, empty Redis database against
a sandbox CRM seeded with 5,000 companies (the accounts the ingest load posts usage for) and one
company per signal whose champion leaves. Signals go one every 0.4 s; each one's clock starts
when the web app answers 202 and stops when its task row is in the sandbox's SQLite file (polled
every 10 ms). First with nothing else going on (the baseline), then while client processes post
100-event usage batches as fast as the web app takes them, the worker evaluating those accounts
every few seconds. Target (issue 14): p95 under 2 s under load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

from adapters.sandbox.adapter import SandboxCrm
from bench.ingest import SECRET, load, signed
from integration.cli.devredis import dev_database, free_port
from integration.config.settings import Settings

PROCFILE = Path(__file__).resolve().parents[1] / "Procfile"
LOAD_ACCOUNTS = 5000  # bench.ingest posts usage for acct-0 .. acct-4999
SIGNAL_INTERVAL_SECONDS = 0.4
TASK_WAIT_SECONDS = 30.0


def seed(signals: int) -> dict[str, object]:
    owners = [{"id": "owner-ana", "name": "Ana Ortiz", "email": "ana@vendor.example"}]
    companies = [
        {
            "id": f"c{n}",
            "name": f"Load {n}",
            "domain": f"load{n}.example",
            "owner_id": "owner-ana",
            "properties": {"product_account_id": f"acct-{n}"},
        }
        for n in range(LOAD_ACCOUNTS)
    ]
    companies += [
        {
            "id": f"s{n}",
            "name": f"Signal Co {n}",
            "domain": f"signal{n}.example",
            "owner_id": f"owner-{n}",
            "properties": {"product_account_id": f"sig-{n}"},
        }
        for n in range(signals)
    ]
    # Each signal's company has its own owner: the task caps (per owner a day) stay out of it.
    owners += [
        {"id": f"owner-{n}", "name": f"Rep {n}", "email": f"rep{n}@vendor.example"}
        for n in range(signals)
    ]
    contacts = [
        {
            "id": f"p{n}",
            "email": f"champ{n}@signal{n}.example",
            "name": f"Champion {n}",
            "company_id": f"s{n}",
            "title": "Director",
            "is_champion": True,
        }
        for n in range(signals)
    ]
    return {"owners": owners, "companies": companies, "contacts": contacts}


def champion_left(n: int, run: str) -> bytes:
    return json.dumps(
        {
            "event_id": f"bench-{run}-{n}",
            "source": "bench",
            "change_type": "company_change",
            "email": f"champ{n}@signal{n}.example",
            "full_name": f"Champion {n}",
            "previous_company_domain": f"signal{n}.example",
            "previous_job_title": "Director",
            "current_company_name": "Elsewhere Inc",
            "relationship_type": "Champion",
        }
    ).encode()


@contextmanager
def procfile(env: dict[str, str], workdir: Path, workers: int) -> Iterator[None]:
    """The Procfile's processes as a platform runs them (`worker` scaled to `workers`)."""
    lines = [line.split(":", 1) for line in PROCFILE.read_text().splitlines() if ":" in line]
    processes = []
    for name, command in lines:
        for index in range(workers if name.strip() == "worker" else 1):
            log = (workdir / f"{name.strip()}{index}.log").open("wb")
            processes.append(
                subprocess.Popen(  # noqa: S603 - the project's own Procfile
                    ["bash", "-c", "exec " + command.strip()],  # noqa: S607
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=PROCFILE.parent,
                )
            )
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_ready(port: int) -> None:
    for _ in range(300):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    msg = "the web app did not answer /healthz"
    raise RuntimeError(msg)


def task_seen(database: Path, company: str, deadline: float) -> float | None:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
        while time.perf_counter() < deadline:
            row = db.execute("select 1 from tasks where company_id = ?", (company,)).fetchone()
            if row:
                return time.perf_counter()
            time.sleep(0.01)
    return None


def signal_latencies(port: int, database: Path, first: int, count: int, run: str) -> list[float]:
    """Send `count` signals, one every SIGNAL_INTERVAL_SECONDS; seconds from 202 to task."""
    results: list[float] = []
    watchers = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for n in range(first, first + count):
        body = champion_left(n, run)
        connection.request(
            "POST", "/webhooks/job-changes", body=body, headers=signed(body, f"sig_{run}_{n}")
        )
        answer = connection.getresponse()
        answer.read()
        accepted = time.perf_counter()
        if answer.status != 202:
            msg = f"signal {n} answered {answer.status}"
            raise RuntimeError(msg)

        def watch(company: str = f"s{n}", since: float = accepted) -> None:
            seen = task_seen(database, company, since + TASK_WAIT_SECONDS)
            results.append(seen - since if seen is not None else float("inf"))

        watcher = threading.Thread(target=watch)
        watcher.start()
        watchers.append(watcher)
        time.sleep(SIGNAL_INTERVAL_SECONDS)
    for watcher in watchers:
        watcher.join()
    return results


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def describe(label: str, values: list[float]) -> str:
    lost = sum(v == float("inf") for v in values)
    done = [v for v in values if v != float("inf")]
    return (
        f"{label}: {len(done)} tasks, p50 {statistics.median(done):.2f} s, "
        f"p95 {p95(done):.2f} s, max {max(done):.2f} s" + (f", {lost} missing" if lost else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=40, help="per phase")
    parser.add_argument("--clients", type=int, default=3, help="usage load client processes")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args()
    with ExitStack() as stack:
        redis_url = stack.enter_context(dev_database(Settings().redis_url))
        workdir = Path("var/bench/signal_to_task").resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        database = workdir / "crm.sqlite3"
        database.unlink(missing_ok=True)
        (workdir / "seed.yaml").write_text(yaml.safe_dump(seed(2 * args.signals)))
        config = workdir / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "crm": {
                        "kind": "sandbox",
                        "sandbox": {"path": str(database), "seed_file": str(workdir / "seed.yaml")},
                    },
                    "webhooks": {
                        "usage": {"secret_env": "BENCH_SECRET"},
                        "job_changes": {"secret_env": "BENCH_SECRET"},
                    },
                    # Live usage evaluated every few seconds: the worker is busy as signals come.
                    "evaluation": {
                        "settle_seconds": 2,
                        "interval_seconds": 3,
                        "backfill_quiet_seconds": 2,
                    },
                }
            )
        )
        port = free_port()
        env = dict(
            os.environ,
            REDIS_URL=redis_url,
            INTEGRATION_REDIS_URL=redis_url,
            INTEGRATION_CONFIG=str(config),
            BENCH_SECRET=SECRET,
            PORT=str(port),
            WEB_CONCURRENCY="2",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            INTEGRATION_LOG_LEVEL="INFO",
        )
        stack.enter_context(procfile(env, workdir, args.workers))
        wait_ready(port)
        # The tables exist before the first poll.
        SandboxCrm.open(database, "product_account_id", workdir / "seed.yaml")
        names = [line.split(":", 1)[0] for line in PROCFILE.read_text().splitlines() if ":" in line]
        print(f"Procfile processes: {', '.join(names)} (worker x{args.workers})")
        idle = signal_latencies(port, database, 0, args.signals, "idle")
        print(describe("baseline, no other load", idle))
        loaded: list[float] = []
        ingest: list[float] = []
        seconds = args.signals * SIGNAL_INTERVAL_SECONDS + 3

        def ingest_load() -> None:
            rate, _ = load(port, "/webhooks/usage", 100, 10, seconds, args.clients)
            ingest.append(rate * 100)

        loader = threading.Thread(target=ingest_load)
        loader.start()
        time.sleep(2)  # the load is up before the first signal
        loaded = signal_latencies(port, database, args.signals, args.signals, "load")
        loader.join()
        print(describe("with usage ingest at load", loaded))
        print(
            f"ingest during the loaded phase: {ingest[0]:,.0f} events/s accepted "
            f"({args.clients} clients, 100-event batches over 10 accounts)"
        )
        print(
            f"p95 under load against the 2 s target: {p95(loaded):.2f} s "
            f"({'met' if p95(loaded) < 2 else 'NOT met'}); "
            f"ratio to the idle baseline {p95(loaded) / p95(idle):.2f}"
        )


if __name__ == "__main__":
    main()
