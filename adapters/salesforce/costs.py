"""What Salesforce charges our writes, in API calls against the org's daily allocation
(adapters/costs.py says why), read off adapters/salesforce/adapter.py:

- fields: `PATCH /composite/sobjects`, 200 Accounts a call (allOrNone false);
- tasks and notes: `POST /composite/sobjects`, 200 a call, WhatId and WhoId in the record (no
  association calls); a single one is `POST /sobjects/Task` (or Note);
- completing a task: `PATCH /sobjects/Task/{id}`;
- enrollment: `POST /actions/standard/assignTargetToSalesCadence`;
- owner notification: `POST /actions/standard/customNotificationAction`, after one SOQL query
  for the notification type's id (cached a day); none without `notification_type` (the run
  makes the fallback task instead).
Not foreseeable, so not counted: a collection sent once more for records refused for a locked
row, and the login. The reads before a write (a contact by email) are made by the dry run
itself and counted as reads.
"""

from __future__ import annotations

from adapters.costs import CostModel
from integration.config.schema import SalesforceCrm

# adapters/salesforce/adapter.py SALESFORCE_COLLECTION_LIMIT, from
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
SALESFORCE_COLLECTION_LIMIT = 200


def salesforce_costs(settings: SalesforceCrm) -> CostModel:
    notifies = bool(settings.notification_type)
    return CostModel(
        "salesforce",
        SALESFORCE_COLLECTION_LIMIT,
        notifies=notifies,
        notification_type_lookup=notifies,
    )
