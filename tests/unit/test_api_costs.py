"""What `integration plan` charges each write path, in the CRM's own API calls."""

from __future__ import annotations

import pytest

from adapters.costs import CallKind, WritePath, local_costs
from adapters.hubspot.adapter import HUBSPOT_BATCH_LIMIT
from adapters.hubspot.costs import hubspot_costs
from adapters.salesforce.adapter import SALESFORCE_COLLECTION_LIMIT
from adapters.salesforce.costs import salesforce_costs
from integration.config.schema import SalesforceCrm


def test_the_cost_models_batch_as_their_adapters_do() -> None:
    assert hubspot_costs().batch_limit == HUBSPOT_BATCH_LIMIT == 100
    assert salesforce_costs(SalesforceCrm()).batch_limit == SALESFORCE_COLLECTION_LIMIT == 200


@pytest.mark.parametrize(
    ("path", "records", "hubspot", "salesforce"),
    [
        (WritePath.WRITE_FIELDS, 250, {CallKind.FIELD_UPDATES: 3}, {CallKind.FIELD_UPDATES: 2}),
        (WritePath.CREATE_TASKS, 100, {CallKind.TASK_CREATES: 1}, {CallKind.TASK_CREATES: 1}),
        (WritePath.CREATE_TASKS, 201, {CallKind.TASK_CREATES: 3}, {CallKind.TASK_CREATES: 2}),
        (WritePath.CREATE_TASK, 3, {CallKind.TASK_CREATES: 3}, {CallKind.TASK_CREATES: 3}),
        (WritePath.CREATE_NOTES, 0, {}, {}),
        (WritePath.COMPLETE_TASK, 2, {CallKind.TASK_UPDATES: 2}, {CallKind.TASK_UPDATES: 2}),
        (WritePath.ENROLL, 1, {CallKind.ENROLLMENTS: 1}, {CallKind.ENROLLMENTS: 1}),
        # HubSpot has no API for owner notifications (the run makes a fallback task);
        # Salesforce needs its notification type to send one.
        (WritePath.NOTIFY_OWNER, 1, {}, {}),
        (WritePath.SENDER_LOOKUP, 1, {CallKind.READS: 1}, {}),
    ],
)
def test_each_write_path_costs_what_the_adapter_sends(
    path: WritePath, records: int, hubspot: dict[CallKind, int], salesforce: dict[CallKind, int]
) -> None:
    assert hubspot_costs().calls(path, records) == hubspot
    assert salesforce_costs(SalesforceCrm()).calls(path, records) == salesforce


def test_a_salesforce_notification_costs_a_call_and_its_type_lookup() -> None:
    model = salesforce_costs(SalesforceCrm(notification_type="Churn_Risk"))
    assert model.calls(WritePath.NOTIFY_OWNER, 2) == {CallKind.NOTIFICATIONS: 2}
    assert model.calls(WritePath.NOTIFICATION_TYPE_LOOKUP, 1) == {CallKind.READS: 1}


def test_the_sandbox_has_no_budget_and_sends_a_batch_in_one_go() -> None:
    model = local_costs("sandbox")
    assert not model.budgeted
    assert model.calls(WritePath.CREATE_TASKS, 5000) == {CallKind.TASK_CREATES: 1}
