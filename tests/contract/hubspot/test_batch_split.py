"""A HubSpot batch refused whole for one record: the valid records are still written (issue 14).

HubSpot answers 400 VALIDATION_ERROR for a whole batch when one input names a property the
portal lacks, and writes nothing of it. The fake below answers that way (for creates too, trace
ids or not), with HubSpot's own error body (tests/fixtures/hubspot/
error_validation__unknown_property.json, built by the fake's property_errors_body).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from werkzeug import Request

from adapters.hubspot.adapter import HubSpotCrm
from adapters.protocol import BatchOutcome, FieldUpdate, TaskRequest, WriteResult
from integration.errors import CrmFatalError, CrmRetriableError
from tests.contract.hubspot.conftest import Sleeps
from tests.fakes.hubspot_server import FakeHubSpot, Reply, definition, property_errors_body

UPDATE = "/crm/v3/objects/companies/batch/update"
CREATE = "/crm/v3/objects/tasks/batch/create"
UNKNOWN = 'Property "{}" does not exist'
NOT_A_NUMBER = 'Property "{}" was not a valid number'


class WholeBatchHubSpot(FakeHubSpot):
    """HubSpot refusing a whole batch, as issue 14 found: one bad input, a 400, nothing written."""

    def _do_batch_update(self, request: Request, object_type: str) -> tuple[int, Any]:
        for item in self._batch_inputs(self._json(request)):
            properties = item.get("properties") or {}
            unknown = self._unknown_properties(object_type, properties)
            if unknown:
                raise Reply(400, property_errors_body(unknown, "PROPERTY_DOESNT_EXIST", UNKNOWN))
            if not str(properties.get("churn_risk_score", "0")).lstrip("-").isdigit():
                body = property_errors_body(["churn_risk_score"], "INVALID_INTEGER", NOT_A_NUMBER)
                raise Reply(400, body)
        return super()._do_batch_update(request, object_type)

    def _do_batch_create(self, request: Request, object_type: str) -> tuple[int, Any]:
        for item in self._batch_inputs(self._json(request)):
            self._check_create(object_type, item)  # the first refusal refuses the batch
        return super()._do_batch_create(request, object_type)


@pytest.fixture
def hub() -> Iterator[WholeBatchHubSpot]:
    with WholeBatchHubSpot() as fake:
        fake.strict_properties = True
        fake.strict_associations = True
        for name, type_ in (("churn_risk_level", "string"), ("churn_risk_score", "number")):
            fake.properties["companies"][name] = definition(name, type_, type_, "cs")
        fake.properties["tasks"]["cs_playbook_key"] = definition(
            "cs_playbook_key", "string", "text", "cs"
        )
        yield fake
        assert fake.spec_problems() == []
        assert fake.server_errors == []


def sent(hub: FakeHubSpot, path: str) -> list[list[dict[str, Any]]]:
    return [r.json["inputs"] for r in hub.requests if r.method == "POST" and r.path == path]


def refusal(hub: FakeHubSpot, index: int) -> str:
    """The rejection we expect: HubSpot's message, category and correlationId of that answer."""
    answer = hub.requests[index].response
    return f"{answer['message']} [VALIDATION_ERROR, correlationId {answer['correlationId']}]"


def updates(hub: FakeHubSpot, count: int) -> list[FieldUpdate]:
    ids = [hub.add_company({"name": f"Company {n}"}) for n in range(count)]
    return [FieldUpdate(cid, {"churn_risk_level": "high", "churn_risk_score": 80}) for cid in ids]


def test_99_companies_are_written_and_the_one_naming_an_unknown_property_is_rejected(
    hub: WholeBatchHubSpot, crm: HubSpotCrm
) -> None:
    batch = updates(hub, 100)
    bad = batch[37] = FieldUpdate(batch[37].crm_id, {"churn_risk_level": "high", "tier": "gold"})

    result = crm.write_fields(batch)

    good = [u.crm_id for u in batch if u is not bad]
    assert result == WriteResult(tuple(good), {bad.crm_id: refusal(hub, 0)})
    assert result.rejected[bad.crm_id].startswith(
        'Property values were not valid: [{"isValid":false,"message":"Property \\"tier\\" does '
        'not exist","error":"PROPERTY_DOESNT_EXIST","name":"tier"'
    )
    # HubSpot named the property: the 99 others go again in one call, without the bad one.
    assert [r.status for r in hub.requests] == [400, 200]
    assert [[i["id"] for i in inputs] for inputs in sent(hub, UPDATE)] == [
        [u.crm_id for u in batch],
        good,
    ]
    assert all(hub.companies[cid]["churn_risk_score"] == "80" for cid in good)
    assert "churn_risk_level" not in hub.companies[bad.crm_id]


def test_a_refusal_naming_no_record_is_bisected_in_13_calls_instead_of_100(
    hub: WholeBatchHubSpot, crm: HubSpotCrm
) -> None:
    batch = updates(hub, 100)
    bad = batch[37] = FieldUpdate(batch[37].crm_id, {"churn_risk_score": "eighty"})

    result = crm.write_fields(batch)

    good = tuple(u.crm_id for u in batch if u is not bad)
    last_refusal = max(i for i, r in enumerate(hub.requests) if r.status == 400)
    assert result == WriteResult(good, {bad.crm_id: refusal(hub, last_refusal)})
    assert result.rejected[bad.crm_id].startswith("Property values were not valid: ")
    # Halves of the halves, the refused half first: 7 refused calls and 6 that wrote.
    sizes = [len(inputs) for inputs in sent(hub, UPDATE)]
    assert sizes == [100, 50, 25, 25, 12, 13, 6, 3, 1, 2, 3, 7, 50]
    assert [r.status for r in hub.requests].count(400) == 7
    assert len(hub.requests) == 13  # one call wrote nothing before; one by one would be 100
    assert all(hub.companies[cid]["churn_risk_score"] == "80" for cid in good)


def test_a_property_the_portal_lacks_on_every_company_costs_one_call_not_199(
    hub: WholeBatchHubSpot, crm: HubSpotCrm
) -> None:
    batch = [FieldUpdate(u.crm_id, {"renewal_tier": "gold"}) for u in updates(hub, 100)]
    result = crm.write_fields(batch)
    assert result.written == ()
    assert set(result.rejected.values()) == {refusal(hub, 0)}
    assert len(result.rejected) == 100
    assert len(hub.requests) == 1


def test_a_rate_limited_or_failing_batch_is_never_split(
    hub: WholeBatchHubSpot, crm: HubSpotCrm, sleeps: Sleeps
) -> None:
    batch = updates(hub, 100)
    hub.fail_next("POST", "/batch/update", 429, headers={"Retry-After": "2"})
    assert len(crm.write_fields(batch).written) == 100
    assert [len(inputs) for inputs in sent(hub, UPDATE)] == [100, 100]

    hub.fail_next("POST", "/batch/update", 503, times=4)
    with pytest.raises(CrmRetriableError, match="503"):
        crm.write_fields(batch)
    assert [len(inputs) for inputs in sent(hub, UPDATE)] == [100] * 6
    assert sleeps == [2.0, 1.0, 2.0, 4.0]


def test_a_missing_scope_stops_the_write_at_once(hub: WholeBatchHubSpot, crm: HubSpotCrm) -> None:
    hub.fail_next("POST", "/batch/update", 403)
    with pytest.raises(CrmFatalError, match="403"):
        crm.write_fields(updates(hub, 100))
    assert len(hub.requests) == 1


def task(company: str, n: int) -> TaskRequest:
    return TaskRequest(
        subject=f"Check in {n}",
        body="Why: usage fell 46%.",
        due_date=date(2026, 11, 24),
        priority="high",
        task_type="call",
        owner_id="77",
        account_crm_id=company,
        idempotency_key=f"usage_drop:acct-{n}:{uuid.uuid4().hex[:8]}",
    )


def test_99_tasks_are_created_when_one_names_a_deleted_company(
    hub: WholeBatchHubSpot, crm: HubSpotCrm
) -> None:
    companies = [hub.add_company({"name": f"Company {n}"}) for n in range(100)]
    companies[62] = "999999"  # deleted since the account was read

    outcomes = crm.create_tasks([task(c, n) for n, c in enumerate(companies)])

    last_refusal = max(i for i, r in enumerate(hub.requests) if r.status == 400)
    message = hub.requests[last_refusal].response["message"]
    assert message == "One or more associations are invalid: 999999 does not exist"
    assert outcomes[62] == BatchOutcome(None, refusal(hub, last_refusal))
    created = [o.crm_id for n, o in enumerate(outcomes) if n != 62]
    assert len(set(created) - {None}) == 99
    assert [hub.tasks[o.crm_id]["hs_task_subject"] for o in outcomes if o.crm_id] == [
        f"Check in {n}" for n in range(100) if n != 62
    ]
    assert len(hub.tasks) == 99
    sizes = [len(inputs) for inputs in sent(hub, CREATE)]
    assert sizes == [100, 50, 50, 25, 12, 13, 6, 3, 1, 2, 3, 7, 25]
    assert len(hub.requests) == 13  # 1 refused whole before; 100 one by one
    # Each call numbers its own inputs for HubSpot's multi-status answers.
    assert all(
        [i["objectWriteTraceId"] for i in inputs] == [str(n) for n in range(len(inputs))]
        for inputs in sent(hub, CREATE)
    )


def test_a_portal_without_the_task_key_property_refuses_every_task_in_one_call(
    hub: WholeBatchHubSpot, crm: HubSpotCrm
) -> None:
    del hub.properties["tasks"]["cs_playbook_key"]
    company = hub.add_company({"name": "Acme"})
    outcomes = crm.create_tasks([task(company, n) for n in range(100)])
    assert {o.crm_id for o in outcomes} == {None}
    assert {o.error for o in outcomes} == {refusal(hub, 0)}
    assert len(hub.requests) == 1


def test_a_daily_limit_met_while_splitting_keeps_the_tasks_already_created(
    hub: WholeBatchHubSpot, crm: HubSpotCrm, sleeps: Sleeps
) -> None:
    companies = [hub.add_company({"name": f"Company {n}"}) for n in range(150)]
    companies[80] = "999999"
    hub.daily_limit = 2  # the batch refused whole, its first half created, then the limit

    outcomes = crm.create_tasks([task(c, n) for n, c in enumerate(companies)])

    # After the 201 HubSpot's daily headers say none are left: the third is never sent.
    assert [r.status for r in hub.requests] == [400, 201]
    assert [len(inputs) for inputs in sent(hub, CREATE)] == [100, 50]
    assert [hub.tasks[o.crm_id]["hs_task_subject"] for o in outcomes[:50]] == [  # type: ignore[index]
        f"Check in {n}" for n in range(50)
    ]
    # Not sent, or refused before HubSpot did anything: worth a retry later, batch 2 included.
    assert all(o.crm_id is None and o.retriable for o in outcomes[50:])
    assert "2 of the portal's 2 daily API requests are used" in (outcomes[149].error or "")
    assert sleeps == []
