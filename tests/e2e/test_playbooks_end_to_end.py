"""What a rep sees: signals posted to the web app, a real RQ worker, tasks in the sandbox CRM."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from redis import Redis

from adapters.protocol import TaskRequest
from adapters.sandbox.adapter import SandboxCrm
from integration.cli.main import main
from integration.errors import CrmRetriableError
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context
from integration.store import runs, waiting
from playbooks.waterfall import run_due_steps
from tests.conftest import (
    CHAMPION_LEFT,
    PEOPLE_SECRET_ENV,
    USAGE_SECRET_ENV,
    daily_usage,
    drain,
    fold,
    post_signed,
    usage_complete_through_yesterday,
)

DROPPING = [10] * 42 + [4] * 7  # ten people a day, then four for the last week
STEADY = [10] * 49


def crm(context: Context) -> SandboxCrm:
    assert isinstance(context.crm, SandboxCrm)
    return context.crm


def post_usage(
    client: Any, secrets: dict[str, str], events: list[dict[str, Any]], msg_id: str | None = None
) -> Any:
    return post_signed(client, "/webhooks/usage", secrets[USAGE_SECRET_ENV], events, msg_id)


def test_a_usage_drop_creates_one_check_in_task_for_the_owner_with_the_numbers(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    assert (
        post_usage(client, webhook_secrets, daily_usage("acme", DROPPING, seats=20)).status_code
        == 202
    )
    usage_complete_through_yesterday(redis)
    assert drain(redis)

    # The seats left unused follow from the drop: one task, which names both.
    [task] = crm(context).tasks()
    assert task.subject == "Check in with Acme Analytics: product usage is down 60%"
    assert (task.owner_id, task.company_id, task.contact_id) == ("owner-ana", "1001", None)
    assert task.body.splitlines()[:4] == [
        "Why: Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) over the "
        "last 7 days.",
        # Seven whole weeks of history so far: seven blocks.
        "Daily active users (weekly average), last 7 weeks (from 10 to 4): ██████▁",
        "Also on this account:",
        "- Only 10 of 20 licensed seats were used in the last 30 days (50%, below 60%).",
    ]
    assert task.body.splitlines()[-1].startswith("Suggested next step: call your main contact")
    assert (task.priority, task.task_type, task.status) == ("high", "call", "NOT_STARTED")
    fields = crm(context).company_properties("1001")
    assert fields == {
        "product_account_id": "acme",
        "churn_risk_level": "high",
        "churn_risk_reasons": "Daily active users fell 60% below their 4-week normal "
        "(4.0 vs 10.0 a day) over the last 7 days.\n"
        "Only 10 of 20 licensed seats were used in the last 30 days (50%, below 60%).",
        "usage_trend_pct": -60.0,
        "license_utilization_pct": 50.0,
        "last_product_activity_date": (datetime.now(UTC) - timedelta(days=1)).date().isoformat(),
    }


def test_the_same_usage_delivered_twice_and_more_usage_later_still_make_one_task(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    events = daily_usage("acme", DROPPING)
    post_usage(client, webhook_secrets, events, msg_id="msg_1")
    drain(redis)
    assert post_usage(client, webhook_secrets, events, msg_id="msg_1").status_code == 200
    today = [
        {
            "account_id": "acme",
            "user_id": "acme-user-0",
            "event": "login",
            "timestamp": datetime.now(UTC).isoformat(),
        }
    ]
    assert post_usage(client, webhook_secrets, today).status_code == 202
    drain(redis)
    assert len(crm(context).tasks()) == 1


def test_steady_usage_creates_no_task_and_writes_no_risk(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    post_usage(client, webhook_secrets, daily_usage("globex", STEADY, seats=12))
    drain(redis)
    assert crm(context).tasks() == []
    fields = crm(context).company_properties("1002")
    assert (
        fields["churn_risk_level"],
        fields["churn_risk_reasons"],
        fields["usage_trend_pct"],
    ) == ("none", "", 0.0)


def test_champion_leaving_creates_one_multithread_task_for_the_owner_tied_to_the_contact(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    secret = webhook_secrets[PEOPLE_SECRET_ENV]
    assert post_signed(client, "/webhooks/job-changes", secret, CHAMPION_LEFT).status_code == 202
    drain(redis)
    # Re-delivered under a new delivery id, and the same departure reported by another source.
    post_signed(client, "/webhooks/job-changes", secret, CHAMPION_LEFT)
    post_signed(
        client,
        "/webhooks/job-changes",
        secret,
        CHAMPION_LEFT | {"event_id": "pdl-99", "source": "pdl"},
    )
    drain(redis)

    [task] = crm(context).tasks()
    assert task.subject == "Priya Natarajan left Globex: find a new champion"
    assert (task.owner_id, task.company_id, task.contact_id) == ("owner-ben", "1002", "2001")
    today = datetime.now(UTC).date().isoformat()
    assert task.body.startswith(
        "Why: Champion Priya Natarajan, Director of Operations, left the account for Umbrella "
        f"Corp (reported by clay on {today}).\nPriya Natarajan is now VP Operations at Umbrella "
        "Corp.\n"
    )
    assert task.body.endswith(
        "Then ask Priya Natarajan for an introduction at Umbrella Corp: a champion who moves is "
        "the warmest lead there is."
    )
    [(note,)] = sqlite3.connect(crm(context).path).execute("select body from notes").fetchall()
    assert note.startswith("Champion change: Champion Priya Natarajan")
    assert crm(context).company_properties("1002")["churn_risk_level"] == "high"


def test_a_promotion_is_remembered_but_creates_no_task(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    promotion = CHAMPION_LEFT | {"change_type": "promotion", "event_id": "z-1"}
    post_signed(client, "/webhooks/job-changes", webhook_secrets[PEOPLE_SECRET_ENV], promotion)
    drain(redis)
    assert crm(context).tasks() == []


def test_signals_for_accounts_the_crm_lacks_are_listed_once_each_not_dropped(
    client: Any,
    context: Context,
    redis: Redis,
    webhook_secrets: dict[str, str],
    settings: Any,
) -> None:
    post_usage(client, webhook_secrets, daily_usage("hooli", DROPPING))
    post_signed(
        client,
        "/webhooks/job-changes",
        webhook_secrets[PEOPLE_SECRET_ENV],
        CHAMPION_LEFT | {"event_id": "x-1", "previous_company_domain": "nowhere.example"},
    )
    drain(redis)
    for _ in range(3):  # hooli keeps sending usage: it stays one line, with a count
        jobs.evaluate_accounts(context, ["hooli"], datetime.now(UTC))
    assert crm(context).tasks() == []
    result = CliRunner().invoke(
        main, ["unmatched", "--config", str(settings.config)], env={"REDIS_URL": settings.redis_url}
    )
    assert result.exit_code == 0
    lines = [" ".join(line.split()[1:]) for line in result.output.splitlines()]
    assert sorted(lines) == ["account hooli seen 4x", "job_change nowhere.example seen 1x x-1"]
    scraped = client.get("/metrics").get_data(as_text=True)
    assert 'cs_signals_unmatched_total{kind="account"} 4.0' in scraped
    assert 'cs_signals_unmatched_total{kind="job_change"} 1.0' in scraped


class CrmDownOnce(SandboxCrm):
    """The sandbox CRM, answering its first task creation as HubSpot does under a 503."""

    failures = 1

    def create_task(self, task: TaskRequest) -> str:
        if self.failures:
            self.failures -= 1
            raise CrmRetriableError(self.name, "create_task", "service unavailable", 503)
        return super().create_task(task)


def test_a_crm_outage_during_evaluation_loses_no_account_and_later_creates_one_task(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    flaky = CrmDownOnce(crm(context).path, crm(context).match_field)
    jobs.install_context(replace(context, crm=flaky))
    post_usage(client, webhook_secrets, daily_usage("acme", DROPPING))
    drain(redis)
    assert flaky.tasks() == []
    assert waiting.waiting_accounts(redis) == set()  # judged: the flag is written
    assert runs.count_due(redis) == 1  # the playbook's first step waits for the next minute

    now = datetime.now(UTC)
    assert run_due_steps(jobs.current_context(), context.playbooks, now) == 1
    assert run_due_steps(jobs.current_context(), context.playbooks, now) == 0
    [task] = flaky.tasks()
    assert task.subject.startswith("Check in with Acme Analytics: product usage is down")
    assert runs.count_due(redis) == 1  # the manager's escalation, in three working days


def test_evaluate_replays_history_as_of_a_date_and_writes_nothing(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str], settings: Any
) -> None:
    # Usage arrives and is folded, but no worker runs: nothing is evaluated or written yet.
    post_usage(client, webhook_secrets, daily_usage("acme", DROPPING))
    fold(redis)
    env = {"REDIS_URL": settings.redis_url}
    before_drop = (datetime.now(UTC) - timedelta(days=9)).date().isoformat()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()

    usage_complete_through_yesterday(redis)
    early = CliRunner().invoke(
        main, ["evaluate", "--config", str(settings.config), "--as-of", before_drop], env=env
    )
    assert early.output == (
        f"watermarks: usage {yesterday}\n"
        f"acme: none (score 0), usage trend +0%, judged through {before_drop}\n"
    )
    late = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--config",
            str(settings.config),
            "--as-of",
            yesterday,
            "--account",
            "acme",
            "--json",
        ],
        env=env,
    )
    [assessment] = [json.loads(line) for line in late.output.splitlines()]
    assert (assessment["level"], assessment["usage_trend_pct"]) == ("high", -60.0)
    assert assessment["judged_through"] == yesterday
    assert crm(context).tasks() == []
    assert redis.exists("ci:{acct:acme}:assessment") == 0


def test_a_new_vp_joining_an_account_is_written_as_a_reason_on_it(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    hire = {
        "event_id": "pdl-7",
        "source": "pdl",
        "change_type": "company_change",
        "email": "kim@acme.example",
        "full_name": "Kim Park",
        "previous_company_domain": "elsewhere.example",
        "current_company_domain": "acme.example",
        "current_job_title": "VP Operations",
    }
    post_signed(client, "/webhooks/job-changes", webhook_secrets[PEOPLE_SECRET_ENV], hire)
    drain(redis)
    reasons = crm(context).company_properties("1001")["churn_risk_reasons"]
    assert reasons.startswith("Kim Park joined as VP Operations (reported by pdl on ")


def test_a_renewal_date_held_in_the_crm_raises_the_risk_of_a_dropping_account(
    settings: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    import yaml

    from adapters.protocol import FieldUpdate
    from integration.jobs.context import build_context, read_config
    from webhooks.app import create_app

    config = yaml.safe_load(settings.config.read_text())
    config["account_facts"] = {"renewal_date": "renewal_date"}
    settings.config.write_text(yaml.safe_dump(config))
    context = build_context(settings, read_config(settings.config))
    jobs.install_context(context)
    renewal = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()
    crm(context).write_fields([FieldUpdate("1001", {"renewal_date": renewal})])
    app = create_app(settings, context.config)
    post_usage(app.test_client(), webhook_secrets, daily_usage("acme", [10] * 42 + [5] * 7))
    usage_complete_through_yesterday(redis)
    drain(redis)
    fields = crm(context).company_properties("1001")
    assert fields["churn_risk_level"] == "high", fields  # a medium drop, one step up
    assert fields["churn_risk_reasons"].endswith(
        f"The renewal is on {renewal}, 40 days away, while other risks are open on the account."
    )
    app.extensions["integration.redis"].close()
    jobs.install_context(None)


def test_a_champion_moving_to_another_customer_is_a_warm_introduction_there(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    move = CHAMPION_LEFT | {
        "event_id": "clay-row-2",
        "current_company_domain": "acme.example",
        "current_company_name": "Acme Analytics",
    }
    post_signed(client, "/webhooks/job-changes", webhook_secrets[PEOPLE_SECRET_ENV], move)
    drain(redis)
    acme = crm(context).company_properties("1001")["churn_risk_reasons"]
    assert acme.startswith("Priya Natarajan, a champion at Globex, joined as VP Operations")
    globex = crm(context).company_properties("1002")["churn_risk_reasons"]
    assert globex.startswith("Champion Priya Natarajan, Director of Operations, left the account")
