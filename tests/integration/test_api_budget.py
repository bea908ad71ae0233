"""The API budget every worker shares: fed by the CRMs' own figures, a reserve for urgent work,
a daily-limit refusal waiting for the reset, and the forecast `plan` and `report` show.

Real Redis; HubSpot is the fake on loopback (its SDK sends through urllib3, which `responses`
never sees), Salesforce is mocked with `responses`, both answering with the vendors' headers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import responses
from redis import Redis

from adapters.budget import Priority, budget_status, describe, spending
from adapters.hubspot.adapter import HubSpotCrm
from adapters.ledger import Ledger
from adapters.protocol import FieldUpdate, TaskRequest
from adapters.salesforce.adapter import SalesforceCrm
from integration.config.schema import Config
from integration.errors import CrmRetriableError
from tests.contract.hubspot.conftest import Sleeps, make_adapter
from tests.contract.salesforce.conftest import API, Org, fixture, make_crm
from tests.fakes.hubspot_server import FakeHubSpot, rate_limit_body
from tests.fakes.salesforce_contract import problems

# 15:00 in New York on a Tuesday: HubSpot's counter resets at 00:00 EST, 05:00 UTC.
NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
NY_MIDNIGHT = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


@pytest.fixture
def org() -> Iterator[Org]:
    """The mocked Salesforce org of tests/contract/salesforce, its requests checked the same way."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mocked = Org(rsps)
        yield mocked
        assert [p for call in rsps.calls for p in problems(call.request)] == []


def config(**budget: Any) -> Config:  # noqa: ANN401
    return Config.model_validate({"budget": budget})


def hubspot(hub: FakeHubSpot, redis: Redis, cfg: Config, now: datetime = NOW) -> HubSpotCrm:
    crm = make_adapter(hub, redis, Sleeps())
    crm.transport.budget = cfg.budget
    crm.transport.clock = lambda: now
    return crm


def salesforce(redis: Redis, cfg: Config, now: datetime) -> SalesforceCrm:
    crm = make_crm(redis, Sleeps())
    crm.transport.budget = cfg.budget
    crm.transport.clock = lambda: now
    return crm


def task(company: str) -> TaskRequest:
    return TaskRequest("Call them", "why", date(2026, 12, 2), "high", "call", None, company)


def test_hubspots_daily_headers_are_what_every_worker_reads(hub: FakeHubSpot, redis: Redis) -> None:
    cfg = config(hubspot_time_zone="America/New_York")
    hub.daily_limit = 1000
    company = hub.add_company({"name": "Acme", "product_account_id": "acme"})
    crm = hubspot(hub, redis, cfg)
    crm.find_accounts(["acme"])
    crm.write_fields([FieldUpdate(company, {"churn_risk_level": "high"})])

    status = budget_status(redis, "hubspot", cfg, NOW)
    assert status is not None
    assert (status.used, status.limit, status.remaining, status.reserved) == (2, 1000, 998, 200)
    assert (status.source, status.calls_last_hour, status.resets_at) == ("headers", 2, NY_MIDNIGHT)
    assert status.to_json()["resets_at"] == "2026-12-02T00:00:00-05:00"


def test_calls_without_daily_headers_count_against_the_configured_limit_until_midnight(
    hub: FakeHubSpot, redis: Redis
) -> None:
    cfg = config(hubspot_daily_limit=500, hubspot_time_zone="America/New_York")
    hub.add_company({"name": "Acme", "domain": "acme.example"})
    crm = hubspot(hub, redis, cfg)
    for _ in range(3):  # search answers carry no rate-limit headers (OAuth apps get none)
        assert crm.find_account_by_domain("acme.example") is not None

    status = budget_status(redis, "hubspot", cfg, NOW)
    assert status is not None
    assert (status.used, status.limit, status.source) == (3, 500, "counted")
    after_reset = budget_status(redis, "hubspot", cfg, NY_MIDNIGHT + timedelta(minutes=1))
    assert after_reset is not None
    assert (after_reset.used, after_reset.remaining) == (0, 500)


def test_salesforces_limit_info_header_feeds_the_same_ledger(org: Org, redis: Redis) -> None:
    cfg = config()
    crm = salesforce(redis, cfg, NOW)
    org.rsps.add(
        "GET", f"{API}/sobjects", json={}, headers={"Sforce-Limit-Info": "api-usage=9000/15000"}
    )
    crm._call("describe_global", lambda sf: sf.restful("sobjects"))  # noqa: SLF001 - any call

    status = budget_status(redis, "salesforce", cfg, NOW)
    assert status is not None
    assert (status.used, status.limit, status.reserved, status.rolling) == (9000, 15000, 3000, True)
    assert status.source == "sforce-limit-info"


def test_with_only_the_reserve_left_bulk_work_waits_for_the_reset_and_urgent_work_goes(
    hub: FakeHubSpot, redis: Redis
) -> None:
    cfg = config(reserve_share=0.2, hubspot_time_zone="America/New_York")
    hub.daily_limit = 10
    company = hub.add_company({"name": "Acme", "product_account_id": "acme"})
    crm = hubspot(hub, redis, cfg)
    for _ in range(8):  # 8 of 10 used: the 2 left are the reserve
        crm.find_accounts(["acme"])
    sent = len(hub.requests)

    with pytest.raises(CrmRetriableError, match="the last 2 are kept for urgent") as held:
        crm.write_fields([FieldUpdate(company, {"churn_risk_level": "high"})])
    assert held.value.retry_after_seconds == (NY_MIDNIGHT - NOW).total_seconds()
    with spending(Priority.BULK), pytest.raises(CrmRetriableError):
        crm.create_task(task(company))  # a non-urgent playbook's task
    assert len(hub.requests) == sent  # nothing was sent

    with spending(Priority.URGENT):
        crm.create_task(task(company))
    assert [t["hs_task_subject"] for t in hub.tasks.values()] == ["Call them"]
    assert redis.ttl("ci:crm:hubspot:paused") < 0  # no worker is paused for it


def test_a_daily_429_pauses_every_worker_until_midnight_in_the_portals_time_zone(
    hub: FakeHubSpot, redis: Redis
) -> None:
    cfg = config(hubspot_time_zone="America/New_York")
    hub.fail_next("POST", "/companies/batch/read", 429, rate_limit_body("DAILY"))
    crm = hubspot(hub, redis, cfg)
    with pytest.raises(CrmRetriableError, match="daily limit") as refused:
        crm.find_accounts(["acme"])
    assert refused.value.retry_after_seconds == 9 * 3600
    assert 9 * 3600 - 5 <= redis.ttl("ci:crm:hubspot:paused") <= 9 * 3600

    other_worker = hubspot(hub, redis, cfg)
    with spending(Priority.URGENT), pytest.raises(CrmRetriableError, match="paused") as paused:
        other_worker.create_task(task("1"))
    assert (paused.value.retry_after_seconds or 0) > 9 * 3600 - 5
    assert len(hub.requests) == 1


def test_salesforces_daily_refusal_waits_until_our_oldest_calls_leave_the_rolling_window(
    org: Org, redis: Redis
) -> None:
    cfg = config()
    first_call = NOW - timedelta(hours=20)
    Ledger(redis, "salesforce").report(14_990, 15_000, "sforce-limit-info", first_call.timestamp())
    org.json("POST", "sobjects/Task", fixture("error_request_limit_exceeded.json"), status=403)
    crm = salesforce(redis, cfg, NOW)
    with spending(Priority.URGENT), pytest.raises(CrmRetriableError) as refused:
        crm.create_task(task("001xx01"))
    # That call leaves the 24 h window by the end of its minute, a day later: 4 h from now.
    assert refused.value.retry_after_seconds == 4 * 3600 + 60
    assert redis.ttl("ci:crm:salesforce:paused") > 4 * 3600 - 5


def test_the_forecast_says_when_todays_quota_runs_out_at_the_last_hours_rate(
    redis: Redis,
) -> None:
    cfg = config(reserve_share=0.01)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    ledger = Ledger(redis, "hubspot")
    period = now.date().isoformat()
    ledger.report(245_000, 250_000, "headers", (now - timedelta(hours=2)).timestamp(), period)
    for minute in range(60):  # 720 calls in the last hour: 0.2 a second
        at = now - timedelta(minutes=60 - minute)
        for _ in range(12):
            ledger.count(at.timestamp(), period)
    status = budget_status(redis, "hubspot", cfg, now)
    assert status is not None

    # 5,000 - 720 = 4,280 left at 0.2 a second: 21,400 s; the 2,500 reserve at 8,900 s.
    assert (status.remaining, status.reserved, status.calls_last_hour) == (4280, 2500, 720)
    assert status.runs_out_at == now + timedelta(seconds=21_400)
    assert status.reserve_reached_at == now + timedelta(seconds=8_900)
    assert describe(status) == (
        "HubSpot API: 245,720 of 250,000 calls used today, 4,280 left (2,500 kept for urgent"
        " playbooks); 720 calls in the last hour; at that rate it runs out at 2026-12-01 17:56 UTC"
    )
    later = budget_status(redis, "hubspot", cfg, now + timedelta(hours=2))  # a quiet hour
    assert later is not None
    assert (later.calls_last_hour, later.runs_out_at) == (0, None)
    assert describe(later).endswith(
        "at that rate it lasts before the reset at 2026-12-02 00:00 UTC"
    )


def test_a_crm_without_a_quota_has_no_budget(redis: Redis) -> None:
    assert budget_status(redis, "sandbox", config(), NOW) is None
    assert budget_status(redis, "hubspot", config(), NOW) is None  # nothing known yet
