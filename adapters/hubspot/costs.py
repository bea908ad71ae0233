"""What HubSpot charges our writes, in API calls (adapters/costs.py says why), read off
adapters/hubspot/adapter.py:

- fields: `POST /crm/v3/objects/companies/batch/update`, 100 companies a call;
- tasks: `POST /crm/v3/objects/tasks/batch/create`, 100 a call, with the company and contact
  associations inline (no association calls); a single task (a fallback, a held task
  released, a retry) is `POST /crm/v3/objects/tasks`;
- notes: `POST /crm/v3/objects/notes/batch/create`, 100 a call (single: `.../notes`);
- completing a task: `PATCH /crm/v3/objects/tasks/{id}`;
- enrollment: `GET /crm/v3/owners/{id}` for the sender (cached an hour), then
  `POST /automation/v4/sequences/enrollments`;
- owner notifications: none (HubSpot has no API for them; the run makes the fallback task).
The reads before a write (a contact by email for the task's association, a task by its key
after an unknown outcome) are made by the dry run itself and counted as reads.
"""

from __future__ import annotations

from adapters.costs import CostModel

# adapters/hubspot/adapter.py HUBSPOT_BATCH_LIMIT, from
# https://developers.hubspot.com/docs/api-reference/crm-objects/guide: 100 inputs per batch call.
HUBSPOT_BATCH_LIMIT = 100


def hubspot_costs() -> CostModel:
    return CostModel("hubspot", HUBSPOT_BATCH_LIMIT, notifies=False, sender_lookup=True)
