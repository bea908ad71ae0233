"""`integration plan`: what an admin sees before switching a playbook on, and a run that then
does exactly that, call for call, with Redis untouched by the plan."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from redis import Redis

from integration.cli.main import main
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context, read_config
from integration.jobs.evaluate import evaluate_accounts
from integration.signals.events import ChangeType, JobChanged
from integration.store import keys, waiting
from playbooks.waterfall import run_due_steps
from tests.conftest import (
    PEOPLE_SECRET_ENV,
    USAGE_SECRET_ENV,
    daily_usage,
    drain,
    fold,
    post_signed,
    usage_complete_through_yesterday,
)
from tests.fakes.hubspot_server import FakeHubSpot

DROPPING = [10] * 42 + [4] * 7
STEADY = [10] * 49
# A HubSpot request by what it does, as `integration plan` counts them (adapters/costs.py).
KINDS = [
    ("POST", r"/companies/batch/update$", "field_updates"),
    ("POST", r"/tasks/batch/create$", "task_creates"),
    ("POST", r"/objects/tasks$", "task_creates"),
    ("POST", r"/notes/batch/create$", "note_creates"),
    ("POST", r"/objects/notes$", "note_creates"),
    ("PATCH", r"/objects/tasks/\d+$", "task_updates"),
    ("POST", r"/sequences/enrollments$", "enrollments"),
]


def kind_of(method: str, path: str) -> str:
    return next((k for m, p, k in KINDS if m == method and re.search(p, path)), "reads")


def calls_by_kind(hub: FakeHubSpot, since: int) -> dict[str, int]:
    counted = Counter(kind_of(r.method, r.path) for r in hub.requests[since:])
    return {kind: n for kind, n in counted.items() if n}


def planned_calls(plan: dict[str, Any]) -> dict[str, int]:
    return {k: n for k, n in plan["calls"].items() if n and k not in ("total", "urgent")}


def dump_everything(redis: Redis) -> dict[bytes, tuple[bytes | None, int]]:
    """Every key's DUMP and when it expires (ms since the epoch, to the second; -1: never):
    two equal snapshots mean nothing was written, expiries included."""
    now_ms = int(redis.time()[0]) * 1000 + int(redis.time()[1]) // 1000
    snapshot = {}
    for key in redis.scan_iter():
        ttl = redis.pttl(key)
        snapshot[key] = (redis.dump(key), -1 if ttl < 0 else round((now_ms + ttl) / 1000))
    return snapshot


def assert_unchanged(redis: Redis, before: dict[bytes, tuple[bytes | None, int]]) -> None:
    after = dump_everything(redis)
    assert after.keys() == before.keys()
    for key, (dumped, expires) in before.items():
        assert after[key][0] == dumped, key
        assert abs(after[key][1] - expires) <= 1, key  # the clock moved on, not the expiry


def plan_json(context: Context, now: datetime, *accounts: str) -> dict[str, Any]:
    from integration.cli.plan import render_plan

    return json.loads(render_plan(context, accounts, None, as_json=True, now=now))


def planned_tasks(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(subject, owner, due date) of every task the plan says the run creates."""
    found = []
    for account in plan["accounts"]:
        actions = [a for step in account["steps"] for a in step["actions"]]
        actions += account["held_tasks_released"]
        for action in actions:
            made = action["instead"] if action["fate"] == "fallback" else action
            if made and made["kind"] == "task" and made["fate"] == "sent":
                found.append((made["subject"], made["owner_id"], made["due_date"]))
    return sorted(found)


def hubspot_tasks(hub: FakeHubSpot, before: set[str]) -> list[tuple[str, str, str]]:
    return sorted(
        (t["hs_task_subject"], t["hubspot_owner_id"], _day(t["hs_timestamp"]))
        for task_id, t in hub.tasks.items()
        if task_id not in before
    )


def _day(stamp: str) -> str:
    if stamp.isdigit():
        return datetime.fromtimestamp(int(stamp) / 1000, UTC).date().isoformat()
    return stamp[:10]


# -- the sandbox: what an admin reads ----------------------------------------------------------


@pytest.fixture
def usage_waiting(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> Context:
    """Acme's usage fell and Globex's held steady; neither is evaluated yet."""
    secret = webhook_secrets[USAGE_SECRET_ENV]
    post_signed(client, "/webhooks/usage", secret, daily_usage("acme", DROPPING, seats=20))
    post_signed(client, "/webhooks/usage", secret, daily_usage("globex", STEADY, seats=12))
    usage_complete_through_yesterday(redis)
    fold(redis)
    return context


def invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(
        main,
        ["plan", "--config", str(settings.config), *args],
        env={"REDIS_URL": settings.redis_url},
    )


def test_plan_shows_reasons_fields_task_and_cost_and_the_run_then_does_it(
    usage_waiting: Context, settings: Settings, redis: Redis
) -> None:
    before = dump_everything(redis)
    result = invoke(settings)
    assert result.exit_code == 0, result.output
    assert_unchanged(redis, before)
    today = datetime.now(UTC).date()
    lines = result.output.splitlines()
    assert lines[0].endswith("(CRM: sandbox); nothing was written")
    assert lines[0].startswith("plan for 2 account(s) as of ")
    assert lines[1].startswith(
        "acme (Acme Analytics, CRM id 1001, owner owner-ana): risk HIGH, score 75, "
        "usage trend -60%, judged through "
    )
    assert lines[2:4] == [
        "  reason: Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) "
        "over the last 7 days. [usage_drop]",
        "  reason: Only 10 of 20 licensed seats were used in the last 30 days (50%, below 60%)."
        " [license_utilization]",
    ]
    assert lines[4:7] == [
        "  fields to write (they differ from what the CRM last took):",
        '    churn_risk_level = "high"',
        '    churn_risk_reasons = "Daily active users fell 60% below their 4-week normal '
        "(4.0 vs 10.0 a day) over the last 7 days.\\nOnly 10 of 20 licensed seats were used in "
        'the last 30 days (50%, below 60%)."',
    ]
    lines = lines[6:]  # the other fields: trend, utilization, last activity
    assert lines[4] == f"  starts usage_drop_checkin (trigger usage_drop), first step due {today}"
    assert lines[5].startswith("  usage_drop_checkin step 1 rep_task (usage_drop): runs, next ")
    due = lines[6].split("due ")[1].split(",")[0]
    assert lines[6] == (
        f"    - task for owner-ana, due {due}, high call: "
        "Check in with Acme Analytics: product usage is down 60%"
    )
    assert lines[7].startswith("        | Why: Daily active users fell 60% below")
    assert "globex (Globex, CRM id 1002, owner owner-ben): risk NONE, score 0" in result.output
    assert lines[-2:] == [
        "CRM API calls (sandbox): 3 = 1 field batch update(s), 1 task create(s), "
        "0 note create(s), 0 task update(s), 0 enrollment(s), 0 notification(s), 1 read(s)",
        "budget: the sandbox CRM has no API budget",
    ]

    drain(redis)  # the real run
    [task] = usage_waiting.crm.tasks()  # type: ignore[attr-defined]
    assert (task.subject, task.owner_id, task.due_date) == (
        "Check in with Acme Analytics: product usage is down 60%",
        "owner-ana",
        due,
    )


def test_plan_json_is_one_object_with_the_same_content(
    usage_waiting: Context, settings: Settings, redis: Redis
) -> None:
    before = dump_everything(redis)
    result = invoke(settings, "--json", "--account", "acme")
    assert result.exit_code == 0, result.output
    assert_unchanged(redis, before)
    plan = json.loads(result.output)
    [acme] = plan["accounts"]
    assert (acme["account_id"], acme["risk"], acme["owner_id"]) == (
        "acme",
        {"level": "high", "score": 75},
        "owner-ana",
    )
    assert [r["code"] for r in acme["reasons"]] == ["usage_drop", "license_utilization"]
    assert acme["field_writes"]["churn_risk_level"] == "high"
    [started] = acme["runs_started"]
    assert (started["playbook"], started["control"]) == ("usage_drop_checkin", False)
    [step] = acme["steps"]
    [task] = step["actions"]
    assert (task["kind"], task["fate"], task["owner_id"], task["priority"]) == (
        "task",
        "sent",
        "owner-ana",
        "high",
    )
    assert task["subject"] == "Check in with Acme Analytics: product usage is down 60%"
    assert task["body"].startswith("Why: Daily active users fell 60% below their 4-week")
    [waiting_run] = acme["waiting"]
    assert (waiting_run["next_step"], waiting_run["due_on"]) == (2, step["next_due"])
    assert plan["calls"] == {
        "field_updates": 1,
        "task_creates": 1,
        "note_creates": 0,
        "task_updates": 0,
        "enrollments": 0,
        "notifications": 0,
        "reads": 1,
        "total": 3,
        "urgent": 0,
    }
    assert (plan["crm"], plan["budget"], plan["budgeted"]) == ("sandbox", None, False)


def test_a_playbook_filter_shows_only_that_playbooks_work(
    usage_waiting: Context, settings: Settings
) -> None:
    plan = json.loads(invoke(settings, "--json", "--playbook", "usage_drop_checkin").output)
    assert [a["account_id"] for a in plan["accounts"]] == ["acme"]
    assert plan["accounts"][0]["field_writes"] == {}
    assert (plan["calls"]["task_creates"], plan["calls"]["field_updates"]) == (1, 0)
    other = json.loads(invoke(settings, "--json", "--playbook", "champion_left_multithread").output)
    assert other["accounts"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--account", "hooli"],
            "error: unknown account 'hooli': no signal has named it yet "
            "(`integration evaluate` lists the accounts known)\n",
        ),
        (["--playbook", "usage_drop_chekin"], "error: unknown playbook 'usage_drop_chekin': "),
    ],
)
def test_an_unknown_account_or_playbook_is_one_line_naming_it(
    usage_waiting: Context, settings: Settings, args: list[str], message: str
) -> None:
    result = invoke(settings, *args)
    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert len(result.output.splitlines()) == 1


# -- HubSpot: the plan and the run agree, call for call ----------------------------------------


@pytest.fixture
def portal(hub: FakeHubSpot) -> dict[str, str]:
    ana = hub.add_owner("ana@vendor.example", "Ana", "Ortiz")
    ben = hub.add_owner("ben@vendor.example", "Ben", "Cole")
    acme = hub.add_company(
        {"name": "Acme Analytics", "product_account_id": "acme", "hubspot_owner_id": ana["id"]}
    )
    globex = hub.add_company(
        {"name": "Globex", "product_account_id": "globex", "hubspot_owner_id": ben["id"]}
    )
    priya = hub.add_contact(
        {"email": "priya@globex.example", "firstname": "Priya", "lastname": "Natarajan"}
    )
    hub.associate(globex, priya)
    return {"ana": ana["id"], "ben": ben["id"], "acme": acme, "globex": globex}


@pytest.fixture
def hubspot(
    tmp_path: Path,
    hub: FakeHubSpot,
    portal: dict[str, str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    webhook_secrets: dict[str, str],
) -> Any:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "test-token")
    config = {
        "crm": {"kind": "hubspot", "hubspot": {"base_url": hub.base_url}},
        "owners": {"managers": {portal["ana"]: portal["ben"]}},
        # One new task per account a week: the second of the week is held.
        "work": {"caps": {"tasks_per_account_per_week": 1}},
        "playbooks": {
            "usage_drop_checkin": {"sequence_id": "7788", "notify_owner": True},
            "champion_left_multithread": {"sequence_id": "4455"},
        },
        "webhooks": {
            "usage": {"secret_env": USAGE_SECRET_ENV},
            "job_changes": {"secret_env": PEOPLE_SECRET_ENV},
        },
        "evaluation": {"settle_seconds": 0, "interval_seconds": 0, "backfill_quiet_seconds": 0},
    }
    path = tmp_path / "hubspot.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = Settings(config=path, redis_url=redis_url)
    context = build_context(settings, read_config(path))
    jobs.install_context(context)
    from webhooks.app import create_app

    yield context, create_app(settings, context.config).test_client()
    jobs.install_context(None)
    context.redis.close()


def champion_left(redis: Redis, now: datetime) -> None:
    """Priya's departure from Globex, stored as the job-change job stores it."""
    change = JobChanged(
        "clay-row-1",
        "clay",
        ChangeType.COMPANY_CHANGE,
        now - timedelta(hours=1),
        "priya@globex.example",
        "Priya Natarajan",
        "Globex",
        "globex.example",
        "Director of Operations",
        "Umbrella Corp",
        "umbrella.example",
        "VP Operations",
        "Champion",
        True,
        previous_account_id="globex",
    )
    redis.hset(keys.people_signals("globex"), change.dedupe_id, json.dumps(change.to_json()))
    waiting.remember_account(redis, "globex")


def check_plan_then_run(
    context: Context, hub: FakeHubSpot, redis: Redis, now: datetime, run: Any
) -> dict[str, Any]:
    """Plan, checking it wrote nothing anywhere; run; check they agree. The plan."""
    before, sent = dump_everything(redis), len(hub.requests)
    plan = plan_json(context, now)
    assert_unchanged(redis, before)  # Redis byte for byte as it was
    assert calls_by_kind(hub, sent).keys() <= {"reads"}  # no write reached HubSpot
    tasks_before, sent = set(hub.tasks), len(hub.requests)
    run()
    assert calls_by_kind(hub, sent) == planned_calls(plan)
    assert hubspot_tasks(hub, tasks_before) == planned_tasks(plan)
    return plan


def test_the_plan_and_the_hubspot_run_agree_call_for_call(
    hubspot: Any,
    hub: FakeHubSpot,
    portal: dict[str, str],
    redis: Redis,
    webhook_secrets: dict[str, str],
) -> None:
    context, client = hubspot
    secret = webhook_secrets[USAGE_SECRET_ENV]
    post_signed(client, "/webhooks/usage", secret, daily_usage("acme", DROPPING, seats=20))
    post_signed(client, "/webhooks/usage", secret, daily_usage("globex", STEADY, seats=12))
    usage_complete_through_yesterday(redis)
    fold(redis)
    champion_left(redis, datetime.now(UTC))

    # Today: the evaluation (a worker drains the queued job) starts both playbooks.
    plan = check_plan_then_run(context, hub, redis, datetime.now(UTC), lambda: drain(redis))
    assert planned_calls(plan) == {
        "field_updates": 1,  # both companies in one batch
        "task_creates": 2,  # Globex's task in a batch; Acme's sequence fallback on its own
        "note_creates": 1,
        "enrollments": 1,
        # The companies (one batch read), Priya by email (once: the note and the enrollment
        # find her cached), Acme's contacts (no primary one to enroll), Ben as the sender.
        "reads": 4,
    }
    acme = next(a for a in plan["accounts"] if a["account_id"] == "acme")
    fates = [(a["kind"], a["fate"]) for a in acme["steps"][0]["actions"]]
    assert fates == [("enrollment", "fallback"), ("notification", "fallback")]
    held = acme["steps"][0]["actions"][1]["instead"]
    assert held["fate"] == "held"
    assert held["why"] == "held: the account has 1 new task(s) this week, the cap"

    # A week on: the held alert goes out and takes Acme's one new task of the week, so the
    # rep's check-in, due now, is held in its turn: the plan says so, and the run does so.
    start = datetime.now(UTC)
    plan = check_plan_then_run(
        context, hub, redis, start + timedelta(days=7), minute(context, start + timedelta(days=7))
    )
    assert planned_calls(plan) == {"task_creates": 1}
    acme = next(a for a in plan["accounts"] if a["account_id"] == "acme")
    [released] = acme["held_tasks_released"]
    assert (released["fate"], released["subject"]) == (
        "sent",
        "Usage drop check-in: Acme Analytics",
    )
    [check_in] = acme["steps"][0]["actions"]
    assert (check_in["fate"], check_in["subject"]) == (
        "held",
        "Check in with Acme Analytics: product usage is down 60%",
    )

    # The week after, the check-in goes out; then, three working days on and still open, the
    # escalation goes to Ana's manager (from the config: HubSpot owners have none), after one
    # read of Ana's owner record.
    plan = check_plan_then_run(
        context, hub, redis, start + timedelta(days=14), minute(context, start + timedelta(days=14))
    )
    assert planned_calls(plan) == {"task_creates": 1}
    plan = check_plan_then_run(
        context, hub, redis, start + timedelta(days=21), minute(context, start + timedelta(days=21))
    )
    assert planned_calls(plan) == {"task_creates": 1, "reads": 1}
    [(subject, owner, _)] = planned_tasks(plan)
    assert subject.startswith("Escalation: Acme Analytics usage still down 60%")
    assert owner == portal["ben"]


def minute(context: Context, now: datetime) -> Any:
    """The daily evaluation, then the minute job's due steps, at `now`."""

    def run() -> None:
        evaluate_accounts(context, ["acme", "globex"], now)
        run_due_steps(context, context.playbooks, now)

    return run
