"""Many planned actions at once: tasks and notes in the CRM's batch calls, the rest one by one
(playbooks/execution.py), each under the same claim its idempotency key has there. Every action
is tried; one account's failure (a contact lookup, a record the CRM refused) costs the others
nothing, and what the CRM created keeps its id whatever happened to the rest of the batch.

The API budget: urgent playbooks' actions go first and may spend the reserve of the daily quota;
the others are bulk work, held by the transports once only the reserve is left
(adapters/budget.py), and fail as retriable: their steps stay due."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.budget import Priority, spending
from adapters.protocol import BatchOutcome
from integration.errors import CrmFatalError, CrmRetriableError
from integration.store import keys
from playbooks.actions import Action, CreateNote, CreateTask
from playbooks.catalogue import resolve_playbooks
from playbooks.edge import ExecutionContext
from playbooks.engine import Playbook
from playbooks.execution import (
    CLAIM_KEEP_SECONDS,
    DONE_KEEP_SECONDS,
    HELD,
    PENDING,
    TAKE_OVER,
    UNKNOWN,
    UNSENT,
    note_request,
    record_done,
    remember_task,
    run_action,
    task_request,
    within_caps,
)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What became of many actions, by idempotency key: the CRM id (or `held`), or the error."""

    done: dict[str, str]
    failed: dict[str, CrmRetriableError | CrmFatalError]


def run_actions(context: ExecutionContext, actions: Sequence[Action], now: datetime) -> Outcomes:
    """Run many actions: tasks and notes with the CRM's batch calls, the rest one by one.
    Every action is tried; one refusal costs the others nothing. Urgent playbooks' actions go
    first, spending the budget's reserve if need be; the rest are bulk work."""
    outcomes = Outcomes({}, {})
    urgent = urgent_playbooks(context)
    for priority in (Priority.URGENT, Priority.BULK):
        wanted = Priority.URGENT is priority
        group = [a for a in actions if (a.playbook in urgent) is wanted]
        if group:
            with spending(priority):
                _run_group(context, group, now, outcomes)
    return outcomes


def urgent_playbooks(context: ExecutionContext) -> frozenset[str]:
    """Names of the playbooks marked `urgent`: the worker's context has them compiled; a
    context without them (a test's, a tool's) resolves them from the config."""
    compiled: list[Playbook] | None = getattr(context, "playbooks", None)
    if compiled is None:
        compiled = resolve_playbooks(context.config)
    return frozenset(playbook.name for playbook in compiled if playbook.spec.urgent)


def _run_group(
    context: ExecutionContext, actions: Sequence[Action], now: datetime, outcomes: Outcomes
) -> None:
    tasks = [a for a in actions if isinstance(a, CreateTask)]
    notes = [a for a in actions if isinstance(a, CreateNote)]
    _run_batch(context, tasks, now, outcomes)
    _run_batch(context, notes, now, outcomes)
    for action in actions:
        if not isinstance(action, CreateTask | CreateNote):
            _run_one(context, action, now, outcomes)


def _run_one(context: ExecutionContext, action: Action, now: datetime, outcomes: Outcomes) -> None:
    try:
        outcomes.done[action.idempotency_key] = run_action(context, action, now)
    except (CrmRetriableError, CrmFatalError) as exc:
        outcomes.failed[action.idempotency_key] = exc


def _run_batch(
    context: ExecutionContext,
    actions: Sequence[CreateTask] | Sequence[CreateNote],
    now: datetime,
    outcomes: Outcomes,
) -> None:
    """Claim each key; create the claimed ones in one batch; store what the CRM gave back."""
    redis = context.redis
    claimed: list[Any] = []
    for action in actions:
        key = keys.action_done(action.idempotency_key)
        held = keys.text(redis.get(key) or b"")
        if held and not held.startswith((PENDING, UNKNOWN, UNSENT)):
            outcomes.done[action.idempotency_key] = held
            continue
        mine = f"{PENDING}{now.timestamp()}"
        if held == UNSENT and redis.eval(TAKE_OVER, 1, key, held, mine, CLAIM_KEEP_SECONDS):
            claimed.append(action)  # counted against the caps when first claimed
            continue
        if isinstance(action, CreateTask) and not held and not within_caps(context, action, now):
            outcomes.done[action.idempotency_key] = HELD
            continue
        if held or not redis.set(key, mine, nx=True, ex=CLAIM_KEEP_SECONDS):
            _run_one(context, action, now, outcomes)  # another's claim, or an unknown outcome
            continue
        claimed.append(action)
    requests = _requests(context, claimed, now, outcomes)
    if not requests:
        return
    sent = [action for action, _ in requests]
    try:
        if isinstance(sent[0], CreateTask):
            created = context.crm.create_tasks([request for _, request in requests])
        else:
            created = context.crm.create_notes([request for _, request in requests])
    except (CrmFatalError, CrmRetriableError) as exc:
        # Refused, or rate-limited: nothing was created. After a 5xx or a timeout some may
        # have been: the next try looks for them before creating (run_action).
        unknown = isinstance(exc, CrmRetriableError) and not exc.nothing_done
        for action in sent:
            key = keys.action_done(action.idempotency_key)
            redis.set(key, UNKNOWN if unknown else UNSENT, ex=CLAIM_KEEP_SECONDS)
            outcomes.failed[action.idempotency_key] = exc
        return
    for action, outcome in zip(sent, created, strict=True):
        _settle(context, action, outcome, now, outcomes)


def _requests(
    context: ExecutionContext, claimed: Sequence[Any], now: datetime, outcomes: Outcomes
) -> list[tuple[Any, Any]]:
    """Each claimed action's request. Building one may ask the CRM (a contact's id): when that
    fails, only that action fails, its claim given back (nothing was sent for it)."""
    requests: list[tuple[Any, Any]] = []
    for action in claimed:
        try:
            if isinstance(action, CreateTask):
                requests.append((action, task_request(context, action)))
            else:
                requests.append((action, note_request(context, action, now)))
        except (CrmFatalError, CrmRetriableError) as exc:
            context.redis.set(
                keys.action_done(action.idempotency_key), UNSENT, ex=CLAIM_KEEP_SECONDS
            )
            outcomes.failed[action.idempotency_key] = exc
    return requests


def _settle(
    context: ExecutionContext,
    action: CreateTask | CreateNote,
    outcome: BatchOutcome,
    now: datetime,
    outcomes: Outcomes,
) -> None:
    key = keys.action_done(action.idempotency_key)
    if outcome.crm_id:
        context.redis.set(key, outcome.crm_id, ex=DONE_KEEP_SECONDS)
        if isinstance(action, CreateTask):
            remember_task(context, action, outcome.crm_id)
        record_done(context, action, outcome.crm_id, now)
        outcomes.done[action.idempotency_key] = outcome.crm_id
        return
    message = outcome.error or "the CRM gave no id"
    if outcome.retriable:
        context.redis.set(key, UNSENT if outcome.unsent else UNKNOWN, ex=CLAIM_KEEP_SECONDS)
        outcomes.failed[action.idempotency_key] = CrmRetriableError(
            context.crm.name, "batch create", message
        )
    else:
        context.redis.set(key, UNSENT, ex=CLAIM_KEEP_SECONDS)
        outcomes.failed[action.idempotency_key] = CrmFatalError(
            context.crm.name, "batch create", message
        )
