"""The demo: the real web app (gunicorn) and a real RQ worker on the sandbox CRM, fed the samples.

It uses an empty Redis database (or a private Redis it starts) and a fresh sandbox file under
var/demo/, so it never touches anyone's data, and it posts every sample twice to show that a
re-delivery creates nothing new.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import click
import requests
import yaml
from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry

from integration import keys
from integration.bootstrap import build_context
from integration.devredis import DevRedis, empty_database_url, find_or_start, free_port
from integration.queues import QUEUE_NAMES
from integration.replay import replay_folder
from integration.report import render_report
from integration.settings import DEFAULT_REDIS_URL, Settings

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "var" / "demo"
WAIT_SECONDS = 90
POLL_SECONDS = 0.2


def run_demo(keep: bool = False) -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    redis_server = find_or_start(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    redis_url = empty_database_url(redis_server.url)
    env = _demo_env(redis_url)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        processes.append(
            _start(
                "web",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "webhooks.app:create_app()",
                ],
                env,
            )
        )
        processes.append(
            _start(
                "worker",
                [
                    sys.executable,
                    "-m",
                    "rq.cli",
                    "worker",
                    "--url",
                    redis_url,
                    "--with-scheduler",
                    "--worker-class",
                    "rq.worker.SimpleWorker",
                    *QUEUE_NAMES,
                ],
                env,
            )
        )
        base_url = f"http://127.0.0.1:{port}"
        _wait_healthy(base_url, processes)
        os.environ.update(env)
        settings = Settings(config=Path(env["INTEGRATION_CONFIG"]), redis_url=redis_url)
        context = build_context(settings)
        click.echo(f"web app on {base_url}, worker on {redis_url}; posting examples/ twice\n")
        for line in replay_folder(ROOT / "examples", base_url, context.config, twice=True):
            click.echo(f"  {line}")
        _wait_drained(context.redis, processes)
        click.echo("\n" + render_report(context))
        tasks = len(context.crm.tasks())  # type: ignore[attr-defined]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)
        if not keep:
            Redis.from_url(redis_url).flushdb()
        _stop(redis_server)
    click.echo(f"\nlogs: {DEMO_DIR}/web.log, {DEMO_DIR}/worker.log")
    return 0 if tasks else 1


def _demo_env(redis_url: str) -> dict[str, str]:
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    crm_file = DEMO_DIR / "crm.sqlite3"
    for leftover in DEMO_DIR.glob("crm.sqlite3*"):
        leftover.unlink()
    example["crm"]["sandbox"] = {
        "path": str(crm_file),
        "seed_file": str(ROOT / "examples" / "crm-seed.yaml"),
    }
    config_path = DEMO_DIR / "config.yaml"
    config_path.write_text(yaml.safe_dump(example, sort_keys=False))
    env = dict(os.environ)
    for source in ("usage", "job_changes"):
        secret_env = example["webhooks"][source]["secret_env"]
        env[secret_env] = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    env |= {
        "INTEGRATION_CONFIG": str(config_path),
        "REDIS_URL": redis_url,
        "INTEGRATION_LOG_LEVEL": "INFO",
    }
    return env


def _start(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log: IO[bytes] = (DEMO_DIR / f"{name}.log").open("wb")
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own argument list


def _wait_healthy(base_url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        _check_alive(processes)
        try:
            if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:  # noqa: PLR2004
                return
        except requests.ConnectionError:
            pass
        time.sleep(POLL_SECONDS)
    msg = f"the web app did not answer /healthz in {WAIT_SECONDS}s; see {DEMO_DIR}/web.log"
    raise click.ClickException(msg)


def _wait_drained(redis: Redis, processes: list[subprocess.Popen[bytes]]) -> None:
    """Wait until no job is queued or running and no account waits for evaluation."""
    deadline = time.monotonic() + WAIT_SECONDS
    queues = [Queue(name, connection=redis) for name in QUEUE_NAMES]
    while time.monotonic() < deadline:
        _check_alive(processes)
        busy = any(q.count or StartedJobRegistry(queue=q).count for q in queues)
        if not busy and not redis.exists(keys.dirty_accounts()):
            return
        time.sleep(POLL_SECONDS)
    msg = f"the worker did not finish in {WAIT_SECONDS}s; see {DEMO_DIR}/worker.log"
    raise click.ClickException(msg)


def _check_alive(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is not None:
            msg = f"{process.args!r} exited with {process.returncode}; see the logs in {DEMO_DIR}"
            raise click.ClickException(msg)


def _stop(server: DevRedis) -> None:
    server.stop()
