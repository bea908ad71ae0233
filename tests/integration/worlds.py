"""The sandbox world the playbook integration tests share: a config, a seeded sandbox CRM, the web
app and a real Redis, with the few moves a rep's or an admin's day is made of.

Each test file keeps its own seed (owners, companies, contacts) and its own World subclass for
what only it needs; what stays the same (the clock, the usage shapes, building and closing worlds,
flagging accounts, the champion's move and the Slack settings) lives here once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from redis import Redis
from rq import Queue, SimpleWorker

from adapters.sandbox.adapter import SandboxCrm, SandboxTask
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context, read_config
from integration.jobs.queues import SIGNALS, enqueue_crm_change
from integration.signals.crm_changes import ChangeKind, CrmChange
from integration.store import runs as stored_runs
from playbooks.waterfall import run_due_steps
from tests import conftest
from tests.fakes.slack_server import FakeSlack
from webhooks.app import create_app

# The next Monday after today: every evaluation and step runs at a time passed in from there.
# Usage ends yesterday, as a live sender's does; judged later, it reads as a source that has
# not sent since (judged through its last day), so the flags stay as they were.
TODAY = datetime.now(UTC).date()
MONDAY = TODAY + timedelta(days=7 - TODAY.weekday())
SEQUENCE = "seq-usage-winback"

DROP_60 = [10] * 42 + [4] * 7  # ten people a day, then four for the last week
DROP_40 = [10] * 42 + [6] * 7
RECOVERED = [10] * 7  # the same last week, ten people a day again
LOW_SEATS = [8] * 49  # eight people a day on twenty seats: 40% of seats used, usage steady

# Ana's manager in the CRM is Mia; Ben has none; Mia and Max are managers.
OWNERS = [
    {
        "id": "owner-ana",
        "name": "Ana Ortiz",
        "email": "ana@vendor.example",
        "manager_id": "mgr-mia",
    },
    {"id": "owner-ben", "name": "Ben Cole", "email": "ben@vendor.example"},
    {"id": "mgr-mia", "name": "Mia Lund", "email": "mia@vendor.example"},
    {"id": "mgr-max", "name": "Max Rey", "email": "max@vendor.example"},
]
COMPANIES = {  # product account id: (CRM id, name, owner)
    "acme": ("1001", "Acme Analytics", "owner-ana"),
    "globex": ("1002", "Globex", "owner-ben"),
    "initech": ("1003", "Initech", "owner-ana"),
    "umbrella": ("1004", "Umbrella", "owner-ana"),
}


def day(offset: int, hour: int = 9, minute: int = 0) -> datetime:
    """`offset` calendar days after MONDAY, at `hour`:`minute` UTC."""
    return datetime.combine(MONDAY + timedelta(days=offset), time(hour, minute), UTC)


def metric(client: Any, line_start: str) -> float:
    """A value the web app's /metrics states (0 when the line is not there)."""
    scraped = client.get("/metrics").get_data(as_text=True)
    found = [line for line in scraped.splitlines() if line.startswith(line_start)]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


# -- the seed ----------------------------------------------------------------------------------


def company(account: str, crm_id: str, name: str, owner: str, **properties: str) -> dict[str, Any]:
    """A sandbox company for a product account, with more company properties if given."""
    return {
        "id": crm_id,
        "name": name,
        "domain": f"{account}.example",
        "owner_id": owner,
        "properties": {"product_account_id": account, **properties},
    }


def seed(
    owners: list[dict[str, Any]],
    companies: dict[str, tuple[str, str, str]],
    primary_contacts: list[dict[str, Any]],
) -> dict[str, Any]:
    """A sandbox seed: these owners, these companies, these primary contacts."""
    return {
        "owners": owners,
        "companies": [company(account, *row) for account, row in companies.items()],
        "contacts": [{**contact, "is_primary": True} for contact in primary_contacts],
    }


# -- the world: config, CRM, web app -----------------------------------------------------------


@dataclass
class World:
    settings: Settings
    context: Context
    client: Any
    secrets: dict[str, str]
    closers: list[Callable[[], None]] = field(default_factory=list)

    # product account id: (CRM id, ...), as the file's seed has it
    companies: ClassVar[dict[str, tuple[Any, ...]]] = COMPANIES

    @property
    def crm(self) -> SandboxCrm:
        assert isinstance(self.context.crm, SandboxCrm)
        return self.context.crm

    @property
    def redis(self) -> Redis:
        return self.context.redis

    def post_usage(
        self, account_id: str, users_per_day: list[int], seats: int | None = None
    ) -> None:
        """Signed usage to the web app, ending yesterday (what a live sender has sent)."""
        events = conftest.daily_usage(account_id, users_per_day, seats=seats)
        response = conftest.post_signed(
            self.client, "/webhooks/usage", self.secrets[conftest.USAGE_SECRET_ENV], events
        )
        assert response.status_code == 202, response.get_data(as_text=True)
        conftest.fold(self.redis, self.context.config)  # as the fold consumer does at once

    def evaluate(self, now: datetime, *account_ids: str) -> None:
        """What the evaluation job does for these accounts, at `now`."""
        jobs.evaluate_accounts(self.context, list(account_ids), now)

    def run_due_steps(self, now: datetime, context: Context | None = None) -> int:
        """What the every-minute `rq cron` job does, at `now`."""
        context = context or self.context
        return run_due_steps(context, context.playbooks, now)

    def tasks(self, company: str | None = None, owner: str | None = None) -> list[SandboxTask]:
        crm_id = self.companies[company][0] if company else None
        return [
            t
            for t in self.crm.tasks()
            if (crm_id is None or t.company_id == crm_id) and (owner is None or t.owner_id == owner)
        ]

    def notes(self, company: str) -> list[str]:
        with closing(sqlite3.connect(self.crm.path)) as db:
            rows = db.execute(
                "select body from notes where company_id = ? order by created_at, id",
                (self.companies[company][0],),
            ).fetchall()
        return [body for (body,) in rows]

    def run(self, company: str, playbook: str = "usage_drop_checkin") -> dict[str, Any]:
        """The one run of `playbook` on the account, as stored."""
        stored = stored_runs.load_runs(self.redis, [company])[company]
        [found] = [raw for raw in stored.values() if raw["playbook"] == playbook]
        return found

    def steps(self, company: str, playbook: str = "usage_drop_checkin") -> list[list[str]]:
        """[step name, ISO time, outcome] for each step the run went through."""
        return [list(step) for step in self.run(company, playbook)["steps"]]

    def complete_in_crm(self, task: SandboxTask, at: datetime) -> None:
        """The rep ticks the task off; the CRM's webhook brings it to a real worker."""
        self.crm.complete_task(task.crm_id)
        change = CrmChange(
            crm="sandbox",
            kind=ChangeKind.TASK_COMPLETED,
            subject_id=task.crm_id,
            occurred_at=at,
            delivery_key=f"task-completed-{task.crm_id}",
        )
        assert enqueue_crm_change(self.redis, change)
        worker = SimpleWorker([Queue(SIGNALS, connection=self.redis)], connection=self.redis)
        assert worker.work(burst=True)


W = TypeVar("W", bound=World)


@contextmanager
def worlds(settings: Settings, secrets: dict[str, str]) -> Iterator[Callable[..., Any]]:
    """Opens worlds built from conftest's sandbox config, these top-level keys replaced
    (playbooks, work, owners, channels...), on the seed given; closes them all at the end.
    Built again, a world is a restarted process on the same CRM and Redis."""
    opened: list[World] = []

    def open_world(world_class: type[W], sandbox_seed: dict[str, Any], **changes: Any) -> W:
        config = yaml.safe_load(settings.config.read_text())
        Path(config["crm"]["sandbox"]["seed_file"]).write_text(yaml.safe_dump(sandbox_seed))
        config.update(changes)
        settings.config.write_text(yaml.safe_dump(config))
        context = build_context(settings, read_config(settings.config))
        jobs.install_context(context)
        app = create_app(settings, context.config)
        world = world_class(settings, context, app.test_client(), secrets)
        world.closers += [context.redis.close, app.extensions["integration.redis"].close]
        opened.append(world)
        return world

    yield open_world
    jobs.install_context(None)
    for world in opened:
        for close in world.closers:
            close()


def flag(world: World, now: datetime, seats: int | None = None, **usage: list[int]) -> None:
    """Usage for these accounts arrives; the evaluation at `now` judges them together."""
    for account, users in usage.items():
        world.post_usage(account, users, seats=seats)
    conftest.usage_complete_through_yesterday(world.redis)
    world.evaluate(now, *usage)


# -- a champion moves; Slack -------------------------------------------------------------------

# Priya, a champion at Globex, joins Acme: the shipped champion_joined_welcome playbook.
CHAMPION_JOINED = conftest.CHAMPION_LEFT | {
    "event_id": "clay-row-7",
    "current_company_name": "Acme Analytics",
    "current_company_domain": "acme.example",
}


def champion_joins_acme(world: World, event_id: str = "clay-row-7") -> SandboxTask:
    """The people webhook brings the move; real workers judge both accounts. Acme's task."""
    payload = CHAMPION_JOINED | {"event_id": event_id}
    secret = world.secrets[conftest.PEOPLE_SECRET_ENV]
    response = conftest.post_signed(world.client, "/webhooks/job-changes", secret, payload)
    assert response.status_code == 202
    assert conftest.drain(world.redis)
    [task] = world.tasks("acme")
    return task


def slack_channels(slack: FakeSlack, default_channel: str | None = None) -> dict[str, Any]:
    """`channels:` for the loopback Slack, with a default channel if given."""
    settings: dict[str, Any] = {"base_url": slack.base_url, "timeout_seconds": 5}
    if default_channel:
        settings["default_channel"] = default_channel
    return {"slack": settings}
