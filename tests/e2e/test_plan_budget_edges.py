"""Found in review of issue 15 items 1 (`integration plan`) and 6 (one API budget): what a
RevOps admin or an operator would have hit, each kept as a test now that it is fixed.

Real Redis; Salesforce mocked with `responses` (tests/contract/salesforce's org, its requests
checked against the vendor's collection); the sandbox CRM for the plan's Slack promise; time
passed in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import responses
from redis import Redis

from adapters.budget import Priority, budget_status, describe, spending
from adapters.costs import local_costs
from adapters.ledger import Ledger
from adapters.protocol import FieldUpdate
from adapters.spend import BudgetGate
from integration.config.schema import Config
from integration.jobs.context import Context
from integration.jobs.dry_run import read_only_crm
from integration.store.read_only import read_only
from playbooks.actions import SendSlack
from playbooks.dry_actions import DryContext, Fate, Spend
from playbooks.dry_actions import run_action as plan_action
from playbooks.execution import run_action
from tests.contract.salesforce.conftest import Org, Sleeps, make_crm
from tests.fakes.salesforce_contract import problems

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


@pytest.fixture
def org() -> Iterator[Org]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mocked = Org(rsps)
        yield mocked
        assert [p for call in rsps.calls for p in problems(call.request)] == []


def test_an_urgent_playbooks_field_update_on_salesforce_may_spend_the_reserve(
    org: Org, redis: Redis
) -> None:
    cfg = Config.model_validate({"budget": {"reserve_share": 0.2}})
    crm = make_crm(redis, Sleeps())
    crm.transport.budget = cfg.budget
    crm.transport.clock = lambda: NOW
    # 12,500 of 15,000 used: the 2,500 left are within the 3,000 kept for urgent playbooks.
    Ledger(redis, "salesforce").report(12_500, 15_000, "sforce-limit-info", NOW.timestamp())
    org.json(
        "PATCH",
        "composite/sobjects",
        [{"id": "001xx000003DGb2AAG", "success": True, "errors": []}],
        headers={"Sforce-Limit-Info": "api-usage=12501/15000"},
    )

    with spending(Priority.URGENT):  # renewal_risk_escalation's `field_update` action
        result = crm.write_fields([FieldUpdate("001xx000003DGb2AAG", {"Escalated__c": "yes"})])

    assert result.written == ("001xx000003DGb2AAG",)


def test_the_plans_budget_line_agrees_with_the_gate_on_old_salesforce_figures(
    redis: Redis,
) -> None:
    cfg = Config.model_validate({"budget": {"reserve_share": 0.2}})
    # The last answer from the org was two hours ago (a quiet evening): 13,000 of 15,000.
    Ledger(redis, "salesforce").report(
        13_000, 15_000, "sforce-limit-info", (NOW - timedelta(hours=2)).timestamp()
    )
    gate = BudgetGate(
        Ledger(redis, "salesforce"), "salesforce", "Salesforce", cfg.budget, 0.8, lambda: NOW
    )
    gate.check("update_accounts", Priority.BULK)  # the run's field refresh goes: no hold
    status = budget_status(redis, "salesforce", cfg, NOW)
    assert status is not None

    # What `integration plan` prints under "budget:" and in its JSON.
    assert "bulk work waits" not in describe(status)
    assert status.to_json()["bulk_held"] is False


def test_the_plan_does_not_promise_a_slack_message_the_run_cannot_send(
    context: Context, redis: Redis
) -> None:
    assert context.config.channels.slack is None  # the admin has not set Slack up
    message = SendSlack(
        "review:slack:1",
        "champion_joined_welcome",
        "acme",
        "1001",
        "owner-ana",
        None,
        "A champion of another customer joined Acme Analytics",
    )
    view = read_only(context.redis)
    spend = Spend(local_costs("sandbox"))
    dry = DryContext(view, read_only_crm(context, view, spend), context.config, view, spend)
    planned = plan_action(dry, message, NOW)

    sent = run_action(context, message, NOW)  # the run itself

    assert sent == "failed: channels.slack is not configured"
    assert planned.fate is not Fate.SENT  # what `integration plan` reports as "fate"
