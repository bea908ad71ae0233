"""The demo: the real web app (gunicorn) and a real RQ worker on the sandbox CRM, fed the samples.

It claims an empty Redis database (of the Redis at REDIS_URL, or of a private one it starts) and
works in a fresh temporary folder, so it never touches anyone's data; it posts every sample twice
to show that a re-delivery creates nothing new. Each phase prints a line as it starts, and a phase
that fails ends the demo with one line saying what failed and where the logs are.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import click
import requests
import yaml
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import StartedJobRegistry

from adapters.sandbox.adapter import SandboxCrm
from integration.cli.devredis import RedisNotFoundError, claimed_database, find_or_start, free_port
from integration.cli.errors import CliError
from integration.cli.replay import replay_folder
from integration.cli.report import render_report
from integration.config.settings import Settings, masked
from integration.jobs.context import Context, build_context
from integration.jobs.queues import QUEUE_NAMES
from integration.store import keys
from integration.store.runs import load_runs
from playbooks.runs import Run
from playbooks.waterfall import run_due_steps

# Shipped with the package, so the demo runs from any folder after `pip install`.
EXAMPLES = Path(__file__).resolve().parent / "examples"
READY_SECONDS = 30
DRAIN_SECONDS = 90
POLL_SECONDS = 0.2
DEMO_SETTLE_SECONDS = 2
DEMO_INTERVAL_SECONDS = 5
DEMO_BACKFILL_QUIET_SECONDS = 5
WATERFALL_DAYS = 7
HEALTH_TIMEOUT_SECONDS = 2
# A state Redis named in the environment is not the demo's: its processes keep state in the
# database claimed for the run, beside the queues, and emptying that one empties both.
_STATE_SETTINGS = (
    "INTEGRATION_STATE_REDIS_URL",
    "STATE_REDIS_URL",
    "INTEGRATION_STATE_REDIS_CLUSTER",
)


def phase(text: str) -> None:
    click.echo(f"==> {text}")


def run_demo(keep: bool = False, debug: bool = False) -> None:
    """Run it all in a fresh temporary folder, removed afterwards unless kept or failed."""
    workdir = Path(tempfile.mkdtemp(prefix="cs-playbooks-demo-"))
    keep_folder = keep
    try:
        with _stopped_cleanly(), ExitStack() as stack:
            redis_url = stack.enter_context(_demo_redis(keep))
            _run(workdir, redis_url, stack)
    except (click.ClickException, RedisError, RedisNotFoundError, requests.RequestException) as exc:
        if debug:
            raise
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        if any(workdir.glob("*.log")):
            keep_folder = True
            message += f" (logs in {workdir})"
        msg = f"the demo stopped: {message}"
        raise CliError(msg) from exc
    finally:
        if not keep_folder:
            shutil.rmtree(workdir, ignore_errors=True)
    if keep:
        click.echo(f"kept: the sandbox CRM and the logs in {workdir}")
    else:
        click.echo("done (--keep keeps the sandbox CRM, the logs and the Redis data)")


@contextmanager
def _stopped_cleanly() -> Iterator[None]:
    """SIGTERM or SIGHUP (a CI time-out, a closed terminal) unwind like Ctrl-C, so the web app
    and the worker are stopped and the claimed database emptied, not left running."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextmanager
def _demo_redis(keep: bool) -> Iterator[str]:
    """A claimed database, emptied after everything using it has stopped (unless kept)."""
    phase("starting Redis")
    server = find_or_start(Settings().redis_url)
    try:
        with claimed_database(server.url) as redis_url:
            click.echo(f"    {server.origin}; database {masked(redis_url)} claimed for this run")
            try:
                yield redis_url
            finally:
                _empty_or_keep(redis_url, keep, private=server.process is not None)
    finally:
        server.stop()


def _empty_or_keep(redis_url: str, keep: bool, private: bool) -> None:
    if keep and private:
        click.echo("    the demo's private Redis stops with it: its data is not kept")
    elif keep:
        click.echo(f"    kept: the data in Redis database {masked(redis_url)}")
    else:
        with Redis.from_url(redis_url) as client:
            client.flushdb()


def _run(workdir: Path, redis_url: str, stack: ExitStack) -> None:
    env = _demo_env(workdir, redis_url)
    phase(f"starting the web app (gunicorn), the fold consumer and an RQ worker; logs in {workdir}")
    port = free_port()
    web = ["-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    web += ["webhooks.app:create_app()"]
    worker = ["-m", "rq.cli", "worker", "--url", redis_url, "--with-scheduler"]
    worker += ["--connection-class", "integration.jobs.worker.PatientRedis"]
    worker += ["--worker-class", "integration.jobs.worker.ResilientWorker", *QUEUE_NAMES]
    fold = ["-m", "integration", "fold"]
    processes = {
        "web": stack.enter_context(_process("web", web, env, workdir)),
        "fold": stack.enter_context(_process("fold", fold, env, workdir)),
        "worker": stack.enter_context(_process("worker", worker, env, workdir)),
    }
    base_url = f"http://127.0.0.1:{port}"
    phase(f"waiting for the web app at {base_url} (up to {READY_SECONDS} s)")
    waited = wait_ready(f"{base_url}/healthz", READY_SECONDS, lambda: _check_alive(processes))
    click.echo(f"    ready after {waited:.1f} s")
    os.environ.update(env)
    for name in _STATE_SETTINGS:
        os.environ.pop(name, None)
    config = Path(env["INTEGRATION_CONFIG"])
    context = build_context(Settings(config=config, redis_url=redis_url, state_redis_url=None))
    phase("replaying the samples twice, as a sender that retries")
    for line in replay_folder(EXAMPLES, base_url, context.config, twice=True):
        click.echo(f"    {line}")
    phase("waiting for the worker to evaluate the accounts")
    _wait_drained(context, processes)
    phase("report: what a rep sees in the sandbox CRM")
    click.echo(render_report(context))
    if not context.crm.tasks():  # type: ignore[attr-defined]  # the demo's CRM is the sandbox
        msg = "the samples created no task in the sandbox CRM: see worker.log"
        raise click.ClickException(msg)
    phase(f"the next {WATERFALL_DAYS} days, simulated: nobody completes the tasks")
    for line in follow_the_waterfall(context, datetime.now(UTC)):
        click.echo(f"    {line}")


def follow_the_waterfall(context: Context, start: datetime) -> Iterator[str]:
    """Run the playbook steps as the minute job would at 09:00 on each of the next days (time
    passed in, so days take no time), then show each run's steps with their times."""
    crm = context.crm
    assert isinstance(crm, SandboxCrm)  # noqa: S101 - the demo's CRM is the sandbox
    seen = {task.crm_id for task in crm.tasks()}
    for day in range(1, WATERFALL_DAYS + 1):
        now = (start + timedelta(days=day)).replace(hour=9, minute=0, second=0, microsecond=0)
        run_due_steps(context, context.playbooks, now)
        for task in crm.tasks():
            if task.crm_id not in seen:
                seen.add(task.crm_id)
                yield (
                    f"{now:%a %Y-%m-%d}: task for {crm.owner_name(task.owner_id)}, due "
                    f"{task.due_date}: {task.subject}"
                )
    ids = sorted(keys.text(a) for a in context.redis.smembers(keys.known_accounts()))
    for account_id, runs in load_runs(context.redis, ids).items():
        for raw in runs.values():
            run = Run.from_json(raw)
            steps = ", ".join(
                f"{s.name} {s.at[:16].replace('T', ' ')} ({s.outcome})" for s in run.steps
            )
            waiting = f"; next step due {run.due_on}" if run.active and run.due_on else ""
            yield f"{account_id} {run.playbook}: {run.status.value}: {steps}{waiting}"


def _demo_env(workdir: Path, redis_url: str) -> dict[str, str]:
    example = yaml.safe_load((EXAMPLES / "config.example.yaml").read_text())
    example["crm"]["sandbox"] = {
        "path": str(workdir / "crm.sqlite3"),
        "seed_file": str(EXAMPLES / "crm-seed.yaml"),
    }
    # The samples arrive within seconds, not over minutes as a real backfill does: a short
    # settle time, interval and backfill quiet time show the same waiting in seconds.
    example["evaluation"] = {
        "settle_seconds": DEMO_SETTLE_SECONDS,
        "interval_seconds": DEMO_INTERVAL_SECONDS,
        "backfill_quiet_seconds": DEMO_BACKFILL_QUIET_SECONDS,
    }
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(example, sort_keys=False))
    env = dict(os.environ)
    for source in ("usage", "job_changes"):
        secret_env = example["webhooks"][source]["secret_env"]
        env[secret_env] = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    for name in _STATE_SETTINGS:  # the demo's state is in its claimed database too
        env.pop(name, None)
    env |= {
        "INTEGRATION_CONFIG": str(config_path),
        "REDIS_URL": redis_url,
        "INTEGRATION_REDIS_URL": redis_url,  # Settings prefers it to REDIS_URL
        "INTEGRATION_LOG_LEVEL": "INFO",
    }
    return env


@contextmanager
def _process(
    name: str, arguments: list[str], env: dict[str, str], workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """This Python running `arguments`, logging to workdir/NAME.log; stopped on exit."""
    log: IO[bytes] = (workdir / f"{name}.log").open("wb")
    command = [sys.executable, *arguments]
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own argument list
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_ready(
    url: str,
    deadline_seconds: float,
    check_alive: Callable[[], None],
    request_timeout: float = HEALTH_TIMEOUT_SECONDS,
) -> float:
    """Seconds until `url` answered 200; any connection or read error in between is a retry.

    A loaded 2-core machine starting gunicorn and a worker at once can take seconds to answer,
    so only the deadline, or a process that exited (`check_alive` raises), ends the wait.
    """
    started = time.monotonic()
    last = "no answer yet"
    while (waited := time.monotonic() - started) < deadline_seconds:
        check_alive()
        try:
            answer = requests.get(url, timeout=request_timeout)
        except requests.RequestException as exc:
            last = type(exc).__name__
        else:
            if answer.status_code == requests.codes.ok:
                return waited
            last = f"HTTP {answer.status_code}"
        time.sleep(POLL_SECONDS)
    msg = f"{url} was not ready after {deadline_seconds:g} s (last: {last})"
    raise click.ClickException(msg)


def _wait_drained(context: Context, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Wait until nothing accepted waits to be folded (the stream, on the state Redis), no job
    is queued or running (RQ, on the queue Redis) and no account waits for evaluation."""
    deadline = time.monotonic() + DRAIN_SECONDS
    state = context.redis
    queues = [Queue(name, connection=context.queue_redis) for name in QUEUE_NAMES]
    while time.monotonic() < deadline:
        _check_alive(processes)
        busy = any(q.count or StartedJobRegistry(queue=q).count for q in queues)
        busy = busy or bool(state.xlen(keys.ingest_stream()))
        if not busy and not state.exists(keys.dirty_accounts()):
            return
        time.sleep(POLL_SECONDS)
    msg = f"the worker did not finish within {DRAIN_SECONDS} s"
    raise click.ClickException(msg)


def _check_alive(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, process in processes.items():
        if process.poll() is not None:
            msg = f"the {name} process exited with code {process.returncode}: see {name}.log"
            raise click.ClickException(msg)
