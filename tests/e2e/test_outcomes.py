"""What a RevOps admin reads in `integration history ACCOUNT`: the signal that came in, how the
account was judged, the playbook step, the CRM record it made (with a link), and the outcome:
the task completed (in the sandbox, HubSpot and Salesforce) and how long it took, the renewal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from redis import Redis

from adapters.protocol import FieldUpdate
from integration.cli.main import main
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context
from integration.store import history, keys
from tests.conftest import drain
from tests.contract.salesforce.conftest import Org
from tests.e2e.test_hubspot_end_to_end import (
    association_removed,
    hubspot_settings,
    portal,  # noqa: F401 - the HubSpot portal fixture, shared with that file
    post_hubspot,
    start,
    task_completed,
)
from tests.e2e.test_salesforce_end_to_end import (
    PRIYA,
    org,  # noqa: F401 - the mocked org fixture, shared with that file
    outbound,
    post_outbound,
    running,  # noqa: F401 - the Salesforce service fixture, shared with that file
)
from tests.fakes.hubspot_server import FakeHubSpot
from tests.integration import worlds
from tests.integration.worlds import COMPANIES, DROP_60, OWNERS, RECOVERED, day, flag

PRIMARY = {"id": "2002", "email": "lee@acme.example", "name": "Lee Chen", "company_id": "1001"}
PORTAL_ID = "4411"


@pytest.fixture
def make_world(
    settings: Settings, webhook_secrets: dict[str, str], redis: Redis
) -> Iterator[Callable[..., worlds.World]]:
    sandbox_seed = worlds.seed(OWNERS, COMPANIES, [PRIMARY])
    with worlds.worlds(settings, webhook_secrets) as open_world:
        yield lambda **changes: open_world(worlds.World, sandbox_seed, **changes)


def run_history(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["history", *args, "--config", str(settings.config)],
        env={"REDIS_URL": settings.redis_url, "INTEGRATION_REDIS_URL": None},
    )


def history_lines(settings: Settings, *args: str) -> list[str]:
    result = run_history(settings, *args)
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    return result.stdout.splitlines()


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


# -- the sandbox: the whole chain ---------------------------------------------------------------


def test_history_reads_signal_assessment_step_task_with_link_then_its_completion(
    make_world: Callable[..., worlds.World],
) -> None:
    world = make_world()
    flag(world, day(0), acme=DROP_60)
    world.run_due_steps(day(7))
    rep, escalation = world.tasks("acme")
    world.complete_in_crm(rep, day(8, 11))

    lines = history_lines(world.settings, "acme")

    run_id = f"usage_drop_checkin:acme:usage_drop:{day(0).date().isoformat()}"
    drop = (
        "Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) over the "
        "last 7 days."
    )
    assert lines[:-1] == [
        f"{stamp(day(8, 11))}  task_completed  usage_drop_checkin step rep_task: task "
        f"{rep.crm_id} completed 8d 2h after it was created",
        f"{stamp(day(8, 11))}  signal          sandbox: task {rep.crm_id} completed "
        f"(delivery task-completed-{rep.crm_id})",
        f"{stamp(day(7))}  run_ended       usage_drop_checkin done: every step ran",
        f"{stamp(day(7))}  action          usage_drop_checkin step manager_escalation: task -> "
        f'{escalation.crm_id} sandbox://task/{escalation.crm_id} "{escalation.subject}"',
        f"{stamp(day(7))}  step            usage_drop_checkin step manager_escalation: ran",
        f"{stamp(day(0))}  action          usage_drop_checkin step rep_task: task -> "
        f'{rep.crm_id} sandbox://task/{rep.crm_id} "{rep.subject}"',
        f"{stamp(day(0))}  step            usage_drop_checkin step rep_task: ran",
        f"{stamp(day(0))}  run_started     usage_drop_checkin started by usage_drop [high]",
        f"{stamp(day(0))}  assessment      risk high, score 60: usage_drop [high]: "
        f"{drop.removesuffix('.')}",
    ]
    # The usage as it came in: folded when it arrived (the wall clock), one delivery.
    usage = re.fullmatch(
        r"\S+ \S+  signal          usage: 448 usage event\(s\) in 1 delivery "
        r"\(deliveries (\d+-\d+)\)",
        lines[-1],
    )
    assert usage is not None, lines[-1]

    entries = [json.loads(line) for line in history_lines(world.settings, "acme", "--json")]
    assert [entry["kind"] for entry in entries] == [
        "task_completed",
        "signal",
        "run_ended",
        "action",
        "step",
        "action",
        "step",
        "run_started",
        "assessment",
        "signal",
    ]
    completed, action = entries[0], entries[5]
    assert completed == {
        "account_id": "acme",
        "kind": "task_completed",
        "at": day(8, 11).isoformat(),
        "playbook": "usage_drop_checkin",
        "run_id": run_id,
        "step": "rep_task",
        "task_id": rep.crm_id,
        "created_at": day(0).isoformat(),
        "completed_at": day(8, 11).isoformat(),
        "seconds": 8 * 86400 + 2 * 3600,
    }
    assert action == {
        "account_id": "acme",
        "kind": "action",
        "at": day(0).isoformat(),
        "playbook": "usage_drop_checkin",
        "run_id": run_id,
        "step": "rep_task",
        "action": "task",
        "crm_id": rep.crm_id,
        "url": f"sandbox://task/{rep.crm_id}",
        "held": False,
        "subject": rep.subject,
    }
    assessment = entries[8]
    assert (assessment["level"], assessment["previous_level"], assessment["score"]) == (
        "high",
        None,
        60,
    )
    [reason] = assessment["reasons"]
    assert (reason["key"], reason["severity"], reason["text"]) == ("usage_drop", "high", drop)
    assert (reason["details"]["drop_pct"], reason["details"]["baseline"]) == (60.0, 10.0)
    assert entries[9]["delivery_ids"] == [usage.group(1)]
    assert (entries[9]["source"], entries[9]["events"]) == ("usage", 448)
    assert history_lines(world.settings, "acme", "--limit", "2") == lines[:2]


def test_a_champion_leaving_reads_as_who_went_where_then_the_task_it_made(
    make_world: Callable[..., worlds.World],
) -> None:
    world = make_world()
    worlds.champion_joins_acme(world, event_id="clay-row-9")

    lines = history_lines(world.settings, "globex")

    assert lines[-1].endswith(
        "  signal          clay: champion Priya Natarajan (Director of Operations) left for "
        "Acme Analytics (delivery clay-row-9)"
    )
    assert (
        "  assessment      risk high, score 60: champion_left:priya@globex.example [high]: "
        in (lines[-2])
    )
    acme = history_lines(world.settings, "acme")
    assert acme[-1].endswith(
        "  signal          clay: champion Priya Natarajan (Director of Operations) joined from "
        "Globex (delivery clay-row-9)"
    )
    [task] = world.tasks("acme")
    assert any(f"task -> {task.crm_id} sandbox://task/{task.crm_id}" in line for line in acme)


def test_a_reason_clearing_is_in_the_trail_with_the_run_it_ends(
    make_world: Callable[..., worlds.World],
) -> None:
    world = make_world()
    flag(world, day(0), acme=DROP_60)
    flag(world, day(3), acme=RECOVERED)

    lines = history_lines(world.settings, "acme", "--limit", "4")

    [note] = [e for e in _entries(world.redis, "acme") if e.get("action") == "note"]
    assert lines[:4] == [
        f"{stamp(day(3))}  run_ended       usage_drop_checkin cleared: the flag cleared",
        f"{stamp(day(3))}  action          usage_drop_checkin step exit: note -> "
        f'{note["crm_id"]} sandbox://note/{note["crm_id"]} "Usage drop check-in: the usage drop '
        f"flag that started this playbook on {day(0).date()} cleared on {day(3).date()}, so "
        'its remainin"',
        f"{stamp(day(3))}  reason_cleared  usage_drop cleared (was: Daily active users fell 60% "
        "below their 4-week normal (4.0 vs 10.0 a day) over the last 7 days.)",
        f"{stamp(day(3))}  assessment      risk none (was high), score 0: nothing flagged",
    ]
    [cleared] = [e for e in _entries(world.redis, "acme") if e["kind"] == "reason_cleared"]
    assert (cleared["key"], cleared["code"], cleared["severity"]) == (
        "usage_drop",
        "usage_drop",
        "high",
    )


def test_an_account_with_no_trail_is_one_line_naming_it(
    make_world: Callable[..., worlds.World],
) -> None:
    world = make_world()
    result = run_history(world.settings, "nosuch")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: no history for account 'nosuch': nothing was received or done for it since "
        "the trail began (keep_days 400); check the id (`integration evaluate --account ID` "
        "judges it now)\n"
    )


def test_a_renewal_field_turning_closed_won_is_one_renewed_outcome(
    make_world: Callable[..., worlds.World],
) -> None:
    world = make_world(account_facts={"renewal_status": "renewal_stage"})
    world.crm.write_fields([FieldUpdate("1001", {"renewal_stage": "Negotiation"})])
    flag(world, day(0), acme=DROP_60)
    world.crm.write_fields([FieldUpdate("1001", {"renewal_stage": "Closed Won"})])
    world.evaluate(day(1), "acme")
    world.evaluate(day(2), "acme")  # seen before: no second outcome

    renewals = [e for e in _entries(world.redis, "acme") if e["kind"] == "renewal"]
    assert renewals == [
        {
            "account_id": "acme",
            "kind": "renewal",
            "at": day(1).isoformat(),
            "outcome": "renewed",
            "value": "Closed Won",
            "field": "renewal_stage",
        }
    ]
    assert history_lines(world.settings, "acme", "--limit", "1") == [
        f"{stamp(day(1))}  renewal         renewed (renewal_stage = Closed Won)"
    ]
    # The trail is never the only copy: the account's outcomes list keeps it too.
    kept = [json.loads(raw) for raw in world.redis.lrange(keys.outcomes("acme"), 0, -1)]
    assert kept == [
        {
            "kind": "renewal",
            "at": day(1).isoformat(),
            "outcome": "renewed",
            "value": "Closed Won",
            "field": "renewal_stage",
        }
    ]


def _entries(redis: Redis, account_id: str) -> list[dict[str, Any]]:
    return [item.to_json() for item in history.read(redis, account_id)]


# -- HubSpot and Salesforce: task-completed webhooks --------------------------------------------


@pytest.fixture
def hubspot(
    tmp_path: Path,
    hub: FakeHubSpot,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    webhook_secrets: dict[str, str],
) -> Iterator[tuple[Context, Any]]:
    settings = hubspot_settings(tmp_path, hub, redis_url, monkeypatch)
    config = yaml.safe_load(settings.config.read_text())
    config["crm"]["hubspot"]["portal_id"] = PORTAL_ID
    settings.config.write_text(yaml.safe_dump(config))
    context, client = start(settings)
    yield context, client
    jobs.install_context(None)
    context.redis.close()


def _task_made(redis: Redis, account_id: str) -> dict[str, Any]:
    [made] = [e for e in _entries(redis, account_id) if e.get("action") == "task"]
    return made


def test_a_hubspot_task_completed_is_an_outcome_with_seconds_to_completion(
    hub: FakeHubSpot,
    portal: dict[str, str],  # noqa: F811 - the fixture imported above
    hubspot: tuple[Context, Any],
    redis: Redis,
) -> None:
    context, client = hubspot
    post_hubspot(client, [association_removed(portal["priya"], portal["globex"])])
    drain(redis)
    [task_id] = hub.tasks
    made = _task_made(redis, "globex")
    # A HubSpot task has no page of its own: the link opens its company, where it shows.
    company = f"https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-2/{portal['globex']}"
    assert (made["crm_id"], made["url"]) == (task_id, company)
    # Completed three hours after it was made (the webhook's time is in milliseconds).
    done = datetime.fromisoformat(made["at"]) + timedelta(hours=3)

    completed = task_completed(task_id, int(done.timestamp() * 1000))
    assert post_hubspot(client, [completed]).status_code == 200
    drain(redis)

    [outcome] = [e for e in _entries(redis, "globex") if e["kind"] == "task_completed"]
    assert (outcome["task_id"], outcome["playbook"], outcome["seconds"]) == (
        task_id,
        "champion_left_multithread",
        3 * 3600,
    )
    lines = history_lines(context.settings, "globex")
    assert lines[0] == (
        f"{stamp(done)}  task_completed  champion_left_multithread step multithread: task "
        f"{task_id} completed 3h after it was created"
    )
    assert f"multithread: task -> {task_id} {company} " in "\n".join(lines)


def test_a_salesforce_task_completed_is_an_outcome_with_seconds_to_completion(
    org: Org,  # noqa: F811 - the fixture imported above
    running: tuple[Context, Any],  # noqa: F811 - the fixture imported above
    redis: Redis,
) -> None:
    context, client = running
    post_outbound(client, outbound(PRIYA, "04lxx0000000001AAA"))
    moved = PRIYA | {"AccountId": "001xx000009ZZZZAAA", "Title": "VP Operations"}
    post_outbound(client, outbound(moved, "04lxx0000000002AAA"))
    drain(redis)
    made = _task_made(redis, "globex")
    task_id = made["crm_id"]
    assert made["url"] == f"https://acme.my.salesforce.com/lightning/r/Task/{task_id}/view"
    done = datetime.fromisoformat(made["at"]) + timedelta(days=2)

    # The org's Flow sends the Task when its Status turns Completed.
    task = {
        "Id": task_id,
        "Status": "Completed",
        "LastModifiedDate": f"{done:%Y-%m-%dT%H:%M:%S}.{done.microsecond // 1000:03d}Z",
    }
    message = outbound(task, "04lxx0000000003AAA").replace(
        'xsi:type="sf:Contact"', 'xsi:type="sf:Task"'
    )
    assert post_outbound(client, message).status_code == 200
    drain(redis)

    [outcome] = [e for e in _entries(redis, "globex") if e["kind"] == "task_completed"]
    assert (outcome["task_id"], outcome["seconds"]) == (task_id, 2 * 86400)
    assert history_lines(context.settings, "globex")[0] == (
        f"{stamp(done)}  task_completed  champion_left_multithread step multithread: task "
        f"{task_id} completed 2d after it was created"
    )
