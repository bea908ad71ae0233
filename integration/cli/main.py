"""The `integration` command: validate a config, run a worker, replay samples, report, demo."""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import click
from redis import Redis
from rq import Queue

from integration.cli.errors import CliError, ExplainingGroup, remember_config_path
from integration.config.schema import Config
from integration.config.settings import Settings, masked
from integration.errors import InvalidConfigError, StorageUnavailableError
from integration.jobs import evaluate as jobs
from integration.jobs.context import (
    Context,
    build_context,
    connect_redis,
    connect_state_redis,
    read_config,
)
from integration.jobs.evaluate import EVALUATION_BATCH, judged_now, load_states
from integration.jobs.failures import list_failed, retry_failed
from integration.jobs.queues import QUEUE_NAMES
from integration.jobs.worker import ResilientWorker
from integration.logs import configure_logging
from integration.risk.assess import assess, assessment_to_json
from integration.signals.accounts import AccountState
from integration.store import keys
from integration.store.cluster import StateRedis
from integration.store.freshness import read_watermarks
from integration.store.rollups import RING_DAYS
from integration.store.unmatched import list_unmatched
from playbooks.catalogue import resolve_playbooks

MAX_LISTED = 50
CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="INTEGRATION_CONFIG",
    default=Path("config.yaml"),
    show_default=True,
    help="The YAML config (or set INTEGRATION_CONFIG).",
    callback=remember_config_path,
)


@click.group(cls=ExplainingGroup)
@click.version_option(
    package_name="cs-playbooks", prog_name="integration", message="%(prog)s %(version)s"
)
@click.option("--debug", is_flag=True, help="On failure, show the Python traceback.")
def main(debug: bool) -> None:
    """Customer-success playbooks inside the CRM."""


@main.command()
@click.argument("config_file", required=False, type=click.Path(path_type=Path))
@CONFIG_OPTION
@click.option(
    "--online",
    is_flag=True,
    help="Also check, in the CRM, that every mapped field exists and takes writes.",
)
def validate(config_file: Path | None, config_path: Path, online: bool) -> None:
    """Check a config file; print every error with its YAML path, or a summary."""
    path = config_file or config_path
    try:
        config = read_config(path)
    except InvalidConfigError as exc:
        click.echo(f"{path}: {len(exc.errors)} error(s)", err=True)
        for error in exc.errors:
            click.echo(f"  {error.yaml_path or '(file)'}: {error.message}", err=True)
            if error.hint:
                click.echo(f"      hint: {error.hint}", err=True)
        sys.exit(1)
    click.echo(_summary(path, config))
    if online:
        _validate_online(config)


def _validate_online(config: Config) -> None:
    if config.crm.kind != "salesforce":
        click.echo(
            f"  online: nothing to describe for {config.crm.kind} "
            "(HubSpot: `integration provision` creates and checks the properties)"
        )
        return
    from adapters.salesforce.adapter import SalesforceCrm
    from adapters.salesforce.describe import check_fields

    context = _context(Settings(), config)
    assert isinstance(context.crm, SalesforceCrm)  # noqa: S101 - crm.kind says so
    problems = check_fields(context.crm, config)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    if problems:
        click.echo(f"{len(problems)} field problem(s) in the org", err=True)
        sys.exit(1)
    click.echo("  online: every mapped field exists in the org and takes writes")


def _summary(path: Path, config: Config) -> str:
    fields = ", ".join(
        f"{name} -> {crm_field}"
        for name, crm_field in config.fields.model_dump().items()
        if crm_field
    )
    running = resolve_playbooks(config)
    playbooks = ", ".join(
        f"{book.name} ({len(book.spec.steps)} step{'s' if len(book.spec.steps) > 1 else ''})"
        for book in running
    )
    rules = ", ".join(name for name, rule in config.risk if getattr(rule, "enabled", False))
    return "\n".join(
        [
            f"{path}: valid",
            f"  crm: {config.crm.kind} (accounts matched on {config.account_match.crm_field})",
            f"  fields: {fields}",
            f"  risk rules: {rules}",
            f"  playbooks ({len(running)} on): {playbooks or 'none'}",
            f"  webhook secrets from: {config.webhooks.usage.secret_env}, "
            f"{config.webhooks.job_changes.secret_env}",
        ]
    )


def _settings(config_path: Path) -> Settings:
    return Settings(config=config_path)


def _context(settings: Settings, config: Config | None = None) -> Context:
    """What a command works with. Both Redis are asked first (the queue Redis, and the state
    Redis when it has its own URL), so one that is down stops the command with one line
    (cli/errors.py), not after start-up has logged a warning about it too."""
    config = config or read_config(settings.config)
    with connect_redis(settings.redis_url) as probe:
        probe.ping()
        state = connect_state_redis(settings, probe)
        if state is not probe:
            with state:
                state.ping()
    return build_context(settings, config)


def _fold_clients(settings: Settings) -> tuple[StateRedis, Redis]:
    """The fold consumer's clients: the state Redis, whose stream it reads and whose rollups
    it writes, and the queue Redis, where it queues the evaluation. Both wait out a restart (a
    cluster client finds a failed-over master by itself)."""
    queue_redis = connect_redis(settings.redis_url, patient=True)
    if settings.state_redis_url and not settings.state_redis_cluster:
        return connect_redis(settings.state_redis_url, patient=True), queue_redis
    return connect_state_redis(settings, queue_redis), queue_redis


@main.command()
@CONFIG_OPTION
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(config_path: Path, burst: bool) -> None:
    """Run an RQ worker (in-process jobs, with RQ's scheduler for retries) that waits out a
    Redis restart (integration/jobs/worker.py); jobs keep the fail-fast client of the context."""
    settings = _settings(config_path)
    configure_logging(settings.log_level)
    context = _context(settings)
    jobs.install_context(context)
    redis = connect_redis(settings.redis_url, patient=True)
    queues = [Queue(name, connection=redis) for name in QUEUE_NAMES]
    ResilientWorker(queues, connection=redis).work(burst=burst, with_scheduler=not burst)


@main.command()
@CONFIG_OPTION
@click.option("--burst", is_flag=True, help="Stop when the ingest stream is empty.")
def fold(config_path: Path, burst: bool) -> None:
    """Fold accepted usage and Segment deliveries into the rollups (Procfile `fold:`): a
    consumer of the ingest stream that waits out a Redis restart (integration/jobs/fold.py)."""
    from integration.jobs.fold import Consumer, fold_backlog

    settings = _settings(config_path)
    configure_logging(settings.log_level)
    config = read_config(settings.config)
    redis, queue_redis = _fold_clients(settings)
    if burst:
        click.echo(f"folded {fold_backlog(redis, queue_redis, config)} event(s)")
        return
    stop: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: stop.append(number))
    Consumer(redis, queue_redis, config).run(lambda: bool(stop))


@main.command()
def migrate() -> None:
    """Move keys to their hash-tagged names and convert the usage rollups to the current layout,
    on the state Redis (once, before starting). The queue Redis holds none of those keys."""
    from integration.store.layout import migrate as migrate_rollups
    from integration.store.renames import adopt_delivery_marks, adopt_message_marks

    settings = Settings()
    with connect_redis(settings.redis_url) as queue_redis:
        state = connect_state_redis(settings, queue_redis)
        marks = adopt_delivery_marks(state)
        messages = adopt_message_marks(state)
        summary = migrate_rollups(state)
    if marks:
        click.echo(f"delivery marks: {marks} moved to their tagged names")
    if messages:
        click.echo(f"segment message marks: {messages} carried over to their claims")
    if summary.already_current:
        click.echo("usage rollups: already in the current layout")
    else:
        click.echo(
            f"usage rollups: {summary.rings} ring(s) of {summary.accounts} account(s) converted"
        )


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--url", required=True, help="Base URL of the running web app.")
@CONFIG_OPTION
@click.option("--twice", is_flag=True, help="Post every file a second time, as a retrying sender.")
def replay(folder: Path, url: str, config_path: Path, twice: bool) -> None:
    """Sign and post the sample signals in FOLDER, shifted so the newest day is yesterday."""
    from integration.cli.replay import replay_folder

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"--url takes the web app's address, as http://localhost:8000; got {masked(url)!r}"
        raise CliError(msg)
    config = read_config(config_path)
    for line in replay_folder(folder, url.rstrip("/"), config, twice=twice):
        click.echo(line)


@main.command()
@CONFIG_OPTION
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Count runs started on or after this day (default: all kept).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def report(config_path: Path, since: datetime | None, as_json: bool) -> None:
    """Per playbook: fired, steps run, tasks completed and how fast, reasons cleared, tasks
    held by caps, treated against control; then each account's flags and tasks (sandbox)."""
    from integration.cli.report import render_report

    context = _context(_settings(config_path))
    day = since.date() if since else None
    click.echo(render_report(context, day, as_json=as_json, now=datetime.now(UTC)))


@main.command()
@CONFIG_OPTION
@click.option("--account", "account_ids", multiple=True, help="Only this account (repeatable).")
@click.option("--playbook", "playbook_name", help="Only this playbook's work.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def plan(
    config_path: Path, account_ids: tuple[str, ...], playbook_name: str | None, as_json: bool
) -> None:
    """Show, writing nothing, what the next run would do: per account its reasons, the CRM
    writes, tasks, enrollments and alerts, the steps waiting, and their cost in API calls
    against today's budget."""
    from integration.cli.plan import render_plan

    context = _context(_settings(config_path))
    click.echo(
        render_plan(context, account_ids, playbook_name, as_json=as_json, now=datetime.now(UTC))
    )


@main.command()
@CONFIG_OPTION
@click.argument("account_id")
@click.option("--limit", default=100, show_default=True, help="Newest entries shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, one entry per line.")
def history(config_path: Path, account_id: str, limit: int, as_json: bool) -> None:
    """The account's audit trail, newest first: signals, assessments, playbook steps, the CRM
    records they made (with links), outcomes."""
    from integration.cli.history import render_history

    context = _context(_settings(config_path))
    click.echo(render_history(context, account_id, limit=limit, as_json=as_json))


@main.group(name="import")
def import_() -> None:
    """Bulk-load data from files."""


@import_.command(name="usage")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@CONFIG_OPTION
def import_usage(file: Path, config_path: Path) -> None:
    """Daily rollups from a CSV or NDJSON export (account_id,date,active_users,logins,seats,...).

    Importing the same file twice changes nothing; bad rows are listed with their line numbers.
    """
    from integration.jobs.queues import enqueue_dirty_evaluation
    from integration.store.importer import import_rows, read_records

    context = _context(_settings(config_path))
    with file.open("rb") as handle:
        lines = sum(1 for _ in handle)
    with click.progressbar(
        read_records(file), length=lines, label=f"importing {file.name}", file=sys.stderr
    ) as records:
        try:
            summary = import_rows(context.redis, records)
        except StorageUnavailableError as exc:
            msg = f"nothing imported: {exc}"
            raise CliError(msg) from exc
    enqueue_dirty_evaluation(
        context.queue_redis, datetime.now(UTC), context.config.evaluation.interval_seconds
    )
    click.echo(
        f"accepted {summary.accepted} row(s) for {len(summary.accounts)} account(s); "
        f"metrics: {', '.join(sorted(summary.metrics)) or 'none'}"
    )
    unknown = sorted(summary.metrics - set(context.config.metrics.names()))
    if unknown:
        click.echo(
            f"stored but not used by any rule yet: {', '.join(unknown)} "
            "(name them under metrics.counted)"
        )
    if summary.too_old:
        click.echo(f"skipped {summary.too_old} row(s) older than the {RING_DAYS} days kept")
    if summary.rejected:
        click.echo(f"rejected {len(summary.rejected)} row(s):")
        for number, reason in summary.rejected[:MAX_LISTED]:
            click.echo(f"  line {number}: {reason}")
        if len(summary.rejected) > MAX_LISTED:
            click.echo(f"  ... and {len(summary.rejected) - MAX_LISTED} more")
        sys.exit(1)


@main.command()
@CONFIG_OPTION
def provision(config_path: Path) -> None:
    """Create the CRM properties the config maps to (HubSpot); safe to run again."""
    context = _context(_settings(config_path))
    if context.config.crm.kind != "hubspot":  # nothing to do is success
        click.echo(
            f"nothing to provision for {context.config.crm.kind}: "
            "its fields are managed in the CRM's own setup"
        )
        return
    from adapters.hubspot.adapter import HubSpotCrm
    from adapters.hubspot.provision import provision as provision_hubspot

    assert isinstance(context.crm, HubSpotCrm)  # noqa: S101 - crm.kind says so
    for line in provision_hubspot(context.crm, context.config):
        click.echo(line)


@main.command()
@CONFIG_OPTION
@click.option("--limit", default=50, show_default=True)
def unmatched(config_path: Path, limit: int) -> None:
    """List signals whose account the CRM does not have (newest first)."""
    context = _context(_settings(config_path))
    entries = list_unmatched(context.redis)[:limit]
    if not entries:
        click.echo("no unmatched signals")
    for entry in entries:
        click.echo(
            f"{entry.last_seen}  {entry.kind:<11} {entry.reference}  "
            f"seen {entry.count}x  {entry.signal_id}".rstrip()
        )


@main.command()
@CONFIG_OPTION
def failed(config_path: Path) -> None:
    """List jobs that failed for good, newest first, with the CRM's error."""
    context = _context(_settings(config_path))
    jobs_failed = list_failed(context.queue_redis)
    if not jobs_failed:
        click.echo("no failed jobs")
    for job in jobs_failed:
        when = job.failed_at.isoformat(timespec="seconds") if job.failed_at else "?"
        click.echo(f"{when}  {job.queue:<8} {job.job_id}  {job.function}\n    {job.error}")


@main.command()
@CONFIG_OPTION
@click.argument("job_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Re-queue every failed job.")
def retry(config_path: Path, job_ids: tuple[str, ...], retry_all: bool) -> None:
    """Re-queue failed jobs (after fixing what their error says)."""
    if not job_ids and not retry_all:
        msg = "name the job ids to retry (see `integration failed`), or --all"
        raise click.UsageError(msg)
    context = _context(_settings(config_path))
    retried = retry_failed(context.queue_redis, None if retry_all else job_ids)
    if retried.requeued or not retried.unknown:
        click.echo(f"re-queued {retried.requeued} job(s)")
    if retried.unknown:
        msg = (
            f"not in the failed registry: {', '.join(retried.unknown)} "
            "(`integration failed` lists the jobs there)"
        )
        raise CliError(msg)


@main.command()
@CONFIG_OPTION
@click.option("--account", "account_ids", multiple=True, help="Only this account (repeatable).")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Judge as at the end of this day (default: today so far).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, one object per account.")
def evaluate(
    config_path: Path, account_ids: tuple[str, ...], as_of: datetime | None, as_json: bool
) -> None:
    """Print risk assessments as of a date, writing nothing (replay history safely).

    Each account is judged on the days its sources have delivered (the freshness watermarks,
    shown first), never later than the day before the date."""
    context = _context(_settings(config_path))
    now = (as_of.replace(tzinfo=UTC) + timedelta(days=1)) if as_of else datetime.now(UTC)
    ids = sorted(
        account_ids or (keys.text(a) for a in context.redis.smembers(keys.known_accounts()))
    )
    marks = read_watermarks(context.redis)
    if not as_json:
        shown = ", ".join(f"{source} {day.isoformat()}" for source, day in marks.items())
        click.echo(f"watermarks: {shown or 'none yet (judged up to yesterday)'}")
    states: dict[str, AccountState] = {}
    for start in range(0, len(ids), EVALUATION_BATCH):  # as the daily job reads them
        states |= load_states(context, ids[start : start + EVALUATION_BATCH], now)
    for account_id in ids:
        judged_through = states[account_id].usage.last_day
        result = assess(states[account_id], context.config.risk, judged_now(now, judged_through))
        if as_json:
            data = assessment_to_json(result) | {"judged_through": judged_through.isoformat()}
            click.echo(json.dumps(data))
            continue
        trend = f"{result.usage_trend_pct:+.0f}%" if result.usage_trend_pct is not None else "n/a"
        click.echo(
            f"{account_id}: {result.level.value} (score {result.score}), usage trend {trend}, "
            f"judged through {judged_through.isoformat()}"
        )
        for reason in result.reasons:
            click.echo(f"  - {reason.text}")
    if not ids:
        click.echo("no accounts yet", err=True)


@main.command()
@CONFIG_OPTION
@click.option("--account", "account_id", required=True)
def assessment(config_path: Path, account_id: str) -> None:
    """Print the last stored risk assessment of one account as JSON."""
    context = _context(_settings(config_path))
    raw = context.redis.get(keys.assessment(account_id))
    if raw is None:
        msg = (
            f"no assessment for account {account_id!r} yet: the daily evaluation stores one "
            f"(`integration evaluate --account {account_id}` shows one now)"
        )
        raise CliError(msg)
    click.echo(json.dumps(json.loads(raw), indent=2))


@main.command()
@click.option("--keep", is_flag=True, help="Keep the demo's sandbox CRM and Redis data.")
def demo(keep: bool) -> None:
    """Run the whole service on the sandbox CRM with the samples in examples/."""
    from integration.cli.demo import run_demo

    run_demo(keep=keep, debug=click.get_current_context().find_root().params["debug"])
