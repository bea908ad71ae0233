"""What running planned actions would do, worked out without doing it: the twin of
playbooks/batches.py and playbooks/execution.py for `integration plan`.

Each action meets the same guards the run's does, in the same order: its idempotency key (done
before, another worker on it, an outcome to look up first), the task caps, the CRM's features
(HubSpot has no owner notifications; an enrollment without a contact or an owner becomes the
fallback task). Claims, caps and lookup caches go to the read-only view's scratch layer
(integration/store/read_only.py), so a later action sees them as the run's would. The CRM's
reads are made for real, and counted; its writes are only recorded, with the adapter method
the run would call, and priced by the CRM's cost model (adapters/costs.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from redis import Redis

from adapters.costs import CallKind, CostModel, WritePath
from adapters.protocol import CrmAdapter
from integration.config.schema import Config
from integration.store import keys
from playbooks.actions import (
    Action,
    CreateNote,
    CreateTask,
    EnrollInSequence,
    NotifyOwner,
    SendEmail,
    SendSlack,
    UpdateField,
)
from playbooks.edge import user
from playbooks.execution import (
    CLAIM_LIVE_SECONDS,
    PENDING,
    UNKNOWN,
    UNSENT,
    contact_id,  # the run's own lookup: its cache writes land in the plan's scratch layer
)

Scope = tuple[str | None, str | None]  # (account id, playbook) a CRM call is made for
PLANNED = "planned"  # what the scratch layer holds for an action the run would do


class Fate(StrEnum):
    """What the run would do with an action."""

    SENT = "sent"  # the run sends it
    HELD = "held"  # a cap holds it for a later working day
    DONE = "done"  # done before: its idempotency key holds the CRM id
    BUSY = "busy"  # another worker is on it now: a later minute tries again
    FALLBACK = "fallback"  # the CRM cannot do it: `instead` is what the run does
    NOTHING = "nothing"  # nothing to do (HubSpot notify: the step's own task reaches them)
    WAITS = "waits"  # the API budget holds it (only the reserve is left): its step stays due


@dataclass(frozen=True, slots=True)
class Planned:
    """An action as the run would meet it."""

    action: Action
    fate: Fate
    why: str = ""
    instead: Planned | None = None
    contact_id: str | None = None  # the CRM contact it is tied to, or enrolled


@dataclass(frozen=True, slots=True)
class Operation:
    """One adapter call the run would make: a write path with its records' scopes, or a
    read (`path` None) made for real by the dry run."""

    path: WritePath | None
    scopes: tuple[Scope, ...]


@dataclass
class Spend:
    """The CRM calls of a dry run, priced at the end (filtered by playbook if asked)."""

    model: CostModel
    operations: list[Operation] = field(default_factory=list)
    scope: Scope = (None, None)

    def write(self, path: WritePath, scopes: Sequence[Scope]) -> None:
        if scopes:
            self.operations.append(Operation(path, tuple(scopes)))

    def read(self) -> None:
        self.operations.append(Operation(None, (self.scope,)))

    def calls(self, playbook: str | None = None) -> dict[CallKind, int]:
        totals = dict.fromkeys(CallKind, 0)
        for operation in self.operations:
            scopes = [s for s in operation.scopes if playbook is None or s[1] == playbook]
            if operation.path is None:
                totals[CallKind.READS] += len(scopes)
                continue
            for kind, calls in self.model.calls(operation.path, len(scopes)).items():
                totals[kind] += calls
        return totals


@dataclass
class DryContext:
    """An ExecutionContext (playbooks/edge.py) that writes nothing: `redis` and `crm_redis`
    are read-only views (the state, and the one the adapter's caches live in), `crm` reads
    for real and writes never (integration/jobs/dry_run.py builds it)."""

    redis: Redis
    crm: CrmAdapter
    config: Config
    crm_redis: Redis
    spend: Spend
    urgent: frozenset[str] = frozenset()  # the playbooks that may spend the budget's reserve
    # Why the API budget holds bulk work (field writes, non-urgent playbooks), or None.
    bulk_waits: str | None = None
    slack: None = None
    email: None = None


def scoped(action: Action | CreateTask) -> Scope:
    return (action.account_id, action.playbook)


def run_actions(dry: DryContext, actions: Sequence[Action], now: datetime) -> dict[str, Planned]:
    """What the run would do with each action (by idempotency key), as playbooks/batches.py
    run_actions: urgent playbooks' actions first, then the rest (bulk work, which the API
    budget may hold); in each group tasks and notes in the CRM's batch calls, the rest one by
    one."""
    planned: dict[str, Planned] = {}
    for urgent in (True, False):
        group = [a for a in actions if (a.playbook in dry.urgent) is urgent]
        if not urgent and dry.bulk_waits:
            planned |= {a.idempotency_key: _held_by_budget(dry, a) for a in group}
            continue
        _batch(dry, [a for a in group if isinstance(a, CreateTask)], now, planned)
        _batch(dry, [a for a in group if isinstance(a, CreateNote)], now, planned)
        for action in group:
            if not isinstance(action, CreateTask | CreateNote):
                dry.spend.scope = scoped(action)
                planned[action.idempotency_key] = run_action(dry, action, now)
    return planned


def _held_by_budget(dry: DryContext, action: Action) -> Planned:
    """Bulk work once only the reserve is left: its first CRM call waits (nothing is sent)."""
    held = keys.text(dry.redis.get(keys.action_done(action.idempotency_key)) or b"")
    if held and not held.startswith((PENDING, UNKNOWN, UNSENT)):
        return Planned(action, Fate.DONE, f"done before: {held}")
    return Planned(action, Fate.WAITS, dry.bulk_waits or "")


def _batch(
    dry: DryContext,
    actions: Sequence[CreateTask] | Sequence[CreateNote],
    now: datetime,
    planned: dict[str, Planned],
) -> None:
    claimed: list[CreateTask | CreateNote] = []
    for action in actions:
        dry.spend.scope = scoped(action)
        key = keys.action_done(action.idempotency_key)
        held = keys.text(dry.redis.get(key) or b"")
        if held and not held.startswith((PENDING, UNKNOWN, UNSENT)):
            planned[action.idempotency_key] = Planned(action, Fate.DONE, f"done before: {held}")
            continue
        mine = f"{PENDING}{now.timestamp()}"
        if held == UNSENT:
            dry.redis.set(key, mine)
            claimed.append(action)  # counted against the caps when first claimed
            continue
        if isinstance(action, CreateTask) and not held:
            full = cap_reached(dry, action, now)
            if full:
                planned[action.idempotency_key] = Planned(action, Fate.HELD, full)
                continue
        if held or not dry.redis.set(key, mine, nx=True):
            planned[action.idempotency_key] = run_action(dry, action, now)
            continue
        claimed.append(action)
    sent = []
    for action in claimed:
        dry.spend.scope = scoped(action)
        contact = contact_id(dry, action.contact_email)
        dry.redis.set(keys.action_done(action.idempotency_key), PLANNED)
        planned[action.idempotency_key] = Planned(action, Fate.SENT, contact_id=contact)
        sent.append(scoped(action))
    batched = WritePath.CREATE_TASKS if actions and isinstance(actions[0], CreateTask) else None
    dry.spend.write(batched or WritePath.CREATE_NOTES, sent)


def run_action(dry: DryContext, action: Action, now: datetime) -> Planned:
    """One action on its own (playbooks/execution.py run_action)."""
    key = keys.action_done(action.idempotency_key)
    mine = f"{PENDING}{now.timestamp()}"
    look_first = False
    if not dry.redis.set(key, mine, nx=True):
        held = keys.text(dry.redis.get(key) or b"")
        if held and not held.startswith((PENDING, UNKNOWN, UNSENT)):
            return Planned(action, Fate.DONE, f"done before: {held}")
        claimed_at = float(held[len(PENDING) :]) if held.startswith(PENDING) else 0.0
        if now.timestamp() - claimed_at < CLAIM_LIVE_SECONDS:
            return Planned(action, Fate.BUSY, "another worker is running it")
        dry.redis.set(key, mine)
        look_first = held != UNSENT
    planned = _perform(dry, action, now, look_first)
    dry.redis.set(key, PLANNED)
    return planned


def _perform(dry: DryContext, action: Action, now: datetime, look_first: bool) -> Planned:
    scope = scoped(action)
    if isinstance(action, CreateTask):
        found = dry.crm.find_task(action.idempotency_key) if look_first else None
        if found:
            return Planned(action, Fate.DONE, f"an earlier try created it: {found}")
        contact = contact_id(dry, action.contact_email)
        dry.spend.write(WritePath.CREATE_TASK, [scope])
        return Planned(action, Fate.SENT, contact_id=contact)
    if isinstance(action, NotifyOwner):
        return _notify(dry, action, now)
    if isinstance(action, CreateNote):
        contact = contact_id(dry, action.contact_email)
        dry.spend.write(WritePath.CREATE_NOTE, [scope])
        return Planned(action, Fate.SENT, contact_id=contact)
    if isinstance(action, UpdateField):
        dry.spend.write(WritePath.WRITE_FIELDS, [scope])
        return Planned(action, Fate.SENT)
    if isinstance(action, SendSlack | SendEmail):
        # The person's address, from the CRM (cached an hour), and the account's link.
        person = user(dry, action.owner_id) if action.owner_id else None
        dry.crm.record_url(action.account_crm_id)
        return _alert(dry, action, person.email if person else None)
    return _enroll(dry, action, now)


def _alert(dry: DryContext, action: SendSlack | SendEmail, address: str | None) -> Planned:
    """Where the run's alert would go, or why it would fail (playbooks/alerts.py decides the
    same way): a channel not set up, or nobody to send it to, sends nothing."""
    who = f"CRM user {action.owner_id}"
    if isinstance(action, SendSlack):
        settings = dry.config.channels.slack
        if settings is None:
            return Planned(action, Fate.NOTHING, "not sent: channels.slack is not configured")
        if action.channel or address:
            return Planned(action, Fate.SENT)
        if settings.default_channel:
            why = f"to {settings.default_channel}: {who} has no email to find them in Slack"
            return Planned(action, Fate.SENT, why)
        return Planned(action, Fate.NOTHING, f"not sent: no email for {who} to find them in Slack")
    if dry.config.channels.email is None:
        return Planned(action, Fate.NOTHING, "not sent: channels.email is not configured")
    if not (action.to or address):
        return Planned(action, Fate.NOTHING, f"not sent: no email address for {who}")
    return Planned(action, Fate.SENT)


def _notify(dry: DryContext, action: NotifyOwner, now: datetime) -> Planned:
    model = dry.spend.model
    if model.notifies:
        name = dry.config.crm.salesforce.notification_type or ""
        cache = keys.crm_notification_type(model.crm, name)
        if model.notification_type_lookup and not dry.crm_redis.get(cache):
            dry.spend.write(WritePath.NOTIFICATION_TYPE_LOOKUP, [scoped(action)])
            dry.crm_redis.set(cache, PLANNED)
        dry.spend.write(WritePath.NOTIFY_OWNER, [scoped(action)])
        return Planned(action, Fate.SENT)
    why = f"{model.crm} cannot notify owners through its API"
    if action.fallback is None:
        return Planned(action, Fate.NOTHING, f"{why}; the step's task reaches them")
    return Planned(action, Fate.FALLBACK, why, _fallback(dry, action.fallback, now))


def _enroll(dry: DryContext, action: EnrollInSequence, now: datetime) -> Planned:
    if action.contact_email is None:
        contacts = dry.crm.account_contacts(action.account_crm_id)
        champion = action.contact_role == "champion"
        wanted = [c for c in contacts if (c.is_champion if champion else c.is_primary)]
        contact = wanted[0].crm_id if wanted else None
    else:
        contact = contact_id(dry, action.contact_email)
    why = ""
    if contact is None:
        why = f"no {action.contact_role.replace('_', ' ')} for this account in the CRM"
    elif action.owner_id is None:
        why = "the account has no owner to send as"
    if why:
        fallback = replace(
            action.fallback, body=f"{action.fallback.body}\nWhy it was not automatic: {why}"
        )
        return Planned(action, Fate.FALLBACK, why, _fallback(dry, fallback, now))
    model = dry.spend.model
    cache = keys.crm_owner(model.crm, action.owner_id or "")
    if model.sender_lookup and not dry.crm_redis.get(cache):
        dry.spend.write(WritePath.SENDER_LOOKUP, [scoped(action)])
        dry.crm_redis.set(cache, PLANNED)
    dry.spend.write(WritePath.ENROLL, [scoped(action)])
    return Planned(action, Fate.SENT, contact_id=contact)


def _fallback(dry: DryContext, task: CreateTask, now: datetime) -> Planned:
    """The fallback task, under the caps on its first try (playbooks/execution.py)."""
    first_try = not dry.redis.exists(keys.action_done(task.idempotency_key))
    full = cap_reached(dry, task, now) if first_try else None
    if full:
        return Planned(task, Fate.HELD, full)
    return run_action(dry, task, now)


def cap_reached(dry: DryContext, task: CreateTask, now: datetime) -> str | None:
    """Count the task against the caps (integration/store/caps.py try_take), or say which cap
    holds it."""
    limits = dry.config.work.caps
    day = now.date()
    year, week, _ = day.isocalendar()
    counters = [
        (
            keys.task_cap("assignee", task.owner_id or "-", day.isoformat()),
            limits.tasks_per_assignee_per_day,
            f"{task.owner_id or 'nobody'} has {{n}} new task(s) today, the cap",
        ),
        (
            keys.task_cap("account", task.account_id, f"{year}-W{week:02d}"),
            limits.tasks_per_account_per_week,
            "the account has {n} new task(s) this week, the cap",
        ),
    ]
    for key, cap, text in counters:
        count = int(dry.redis.get(key) or 0)
        if cap and count >= cap:
            return f"held: {text.format(n=count)}"
    for key, _, _ in counters:
        dry.redis.incr(key)
    return None
