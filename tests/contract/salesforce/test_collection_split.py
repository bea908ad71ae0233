"""A collection refused whole for one record: the valid records are still written (issue 14).

With allOrNone false Salesforce reports most failures per record in a 200, but a request it
cannot read (a record naming a field the org lacks, a value of the wrong JSON type) is refused
whole with a 400 and the error array of reference/salesforce.md 3, and nothing is saved.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import responses

from adapters.protocol import BatchOutcome, FieldUpdate, TaskRequest, WriteResult
from adapters.salesforce.adapter import SalesforceCrm
from tests.contract.salesforce.conftest import API, LIMIT_INFO, Org

COLLECTION = f"{API}/composite/sobjects"
ACCOUNT_FIELDS = frozenset({"attributes", "id", "Churn_Risk_Level__c", "Churn_Risk_Score__c"})
NO_TIER = "No such column 'Tier__c' on sobject of type Account"
NOT_A_NUMBER = (
    "Cannot deserialize instance of double from VALUE_STRING value eighty or request may be "
    "missing a required field at [line:1, column:2]"
)


def org_of(fields: frozenset[str]) -> Any:  # noqa: ANN401 - a responses callback
    """An org that refuses a whole collection naming a field it lacks, or a bad number."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
        records = json.loads(request.body)["records"]
        for record in records:
            unknown = sorted(set(record) - fields)
            if unknown:
                sobject = record["attributes"]["type"]
                message = f"No such column '{unknown[0]}' on sobject of type {sobject}"
                error = {"message": message, "errorCode": "INVALID_FIELD"}
                return 400, LIMIT_INFO, json.dumps([error])
            if isinstance(record.get("Churn_Risk_Score__c"), str):
                error = {"message": NOT_A_NUMBER, "errorCode": "JSON_PARSER_ERROR"}
                return 400, LIMIT_INFO, json.dumps([error])
        body = [{"id": r.get("id", "00Txx1"), "success": True, "errors": []} for r in records]
        return 200, LIMIT_INFO, json.dumps(body)

    return answer


def updates(count: int) -> list[FieldUpdate]:
    return [
        FieldUpdate(f"001xx{n:013d}", {"Churn_Risk_Level__c": "high", "Churn_Risk_Score__c": 80})
        for n in range(count)
    ]


def sizes(org: Org, method: str) -> list[int]:
    return [len(body["records"]) for body in org.sent(method, "/composite/sobjects")]


def test_199_accounts_are_written_and_the_one_naming_a_missing_field_is_rejected(
    org: Org, crm: SalesforceCrm
) -> None:
    org.rsps.add_callback(responses.PATCH, COLLECTION, callback=org_of(ACCOUNT_FIELDS))
    batch = updates(200)
    bad = batch[137] = FieldUpdate(batch[137].crm_id, {"Tier__c": "gold"})

    result = crm.write_fields(batch)

    good = tuple(u.crm_id for u in batch if u is not bad)
    assert result == WriteResult(good, {bad.crm_id: f"INVALID_FIELD: {NO_TIER}"})
    assert sizes(org, "PATCH") == [200, 199]  # Salesforce named the field: set aside at once
    resent = org.sent("PATCH", "/composite/sobjects")[1]["records"]
    assert [r["id"] for r in resent] == list(good)


def test_a_refusal_naming_no_field_is_bisected_in_15_calls_instead_of_200(
    org: Org, crm: SalesforceCrm
) -> None:
    org.rsps.add_callback(responses.PATCH, COLLECTION, callback=org_of(ACCOUNT_FIELDS))
    batch = updates(200)
    bad = batch[137] = FieldUpdate(batch[137].crm_id, {"Churn_Risk_Score__c": "eighty"})

    result = crm.write_fields(batch)

    good = tuple(u.crm_id for u in batch if u is not bad)
    assert result == WriteResult(good, {bad.crm_id: f"JSON_PARSER_ERROR: {NOT_A_NUMBER}"})
    assert sizes(org, "PATCH") == [200, 100, 100, 50, 25, 25, 12, 13, 6, 3, 1, 2, 3, 7, 50]


def test_an_org_without_the_task_key_field_refuses_every_task_in_one_call(
    org: Org, crm: SalesforceCrm
) -> None:
    task_fields = "attributes Subject Description ActivityDate Priority Status Type WhatId OwnerId"
    org.rsps.add_callback(
        responses.POST, COLLECTION, callback=org_of(frozenset(task_fields.split()))
    )
    tasks = [
        TaskRequest(
            subject=f"Check in {n}",
            body="Why: usage fell 46%.",
            due_date=date(2026, 11, 24),
            priority="high",
            task_type="call",
            owner_id="005xx0000001",
            account_crm_id="001xx0000000001",
            idempotency_key=f"usage_drop:acct-{n}:2026-11-23",
        )
        for n in range(200)
    ]
    outcomes = crm.create_tasks(tasks)
    message = "INVALID_FIELD: No such column 'Playbook_Key__c' on sobject of type Task"
    assert outcomes == [BatchOutcome(None, message)] * 200
    assert sizes(org, "POST") == [200]
