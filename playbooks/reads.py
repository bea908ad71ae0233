"""What moving playbook runs reads, for many accounts in a round trip each: runs, open tasks,
kept assessments, the working calendar, and who a step routes to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from integration.risk.assess import RiskAssessment, assessment_from_json
from integration.store import keys
from integration.store import runs as stored_runs
from integration.store.cluster import get_many
from playbooks.execution import ExecutionContext, user
from playbooks.runs import Calendar, Run

HELD_PREFIX = "held:"  # a task a cap holds, named in its run's tasks until it goes out


def calendar(context: ExecutionContext) -> Calendar:
    work = context.config.work
    return Calendar(work.weekday_numbers(), frozenset(work.holidays))


def runs_of(context: ExecutionContext, account_ids: Sequence[str]) -> dict[str, dict[str, Run]]:
    """Each account's runs by slot."""
    stored = stored_runs.load_runs(context.redis, account_ids)
    return {
        account_id: {slot: Run.from_json(raw) for slot, raw in runs.items()}
        for account_id, runs in stored.items()
    }


def run_by_id(context: ExecutionContext, account_id: str, run_id: str) -> Run | None:
    return next(
        (
            run
            for run in runs_of(context, [account_id])[account_id].values()
            if run.run_id == run_id
        ),
        None,
    )


def open_tasks(context: ExecutionContext, account_ids: Sequence[str]) -> dict[str, set[str]]:
    pipe = context.redis.pipeline(transaction=False)
    for account_id in account_ids:
        pipe.smembers(keys.open_tasks(account_id))
    return {
        account_id: {keys.text(t) for t in reply}
        for account_id, reply in zip(account_ids, pipe.execute(), strict=True)
    }


def assessments(context: ExecutionContext, account_ids: Sequence[str]) -> dict[str, RiskAssessment]:
    """The assessments the evaluation kept (the latest judgement of each account)."""
    raws = get_many(context.redis, [keys.assessment(a) for a in account_ids])
    return {
        account_id: assessment_from_json(json.loads(raw))
        for account_id, raw in zip(account_ids, raws, strict=True)
        if raw
    }


def manager_of(context: ExecutionContext, owner_id: str | None) -> str | None:
    """The owner's manager: from the CRM where it knows (Salesforce User.ManagerId), else the
    config's owners.managers."""
    if not owner_id:
        return None
    person = user(context, owner_id)
    if person is not None and person.manager_id:
        return person.manager_id
    return context.config.owners.managers.get(owner_id)
