"""The next run, worked out without doing it (`integration plan`): the evaluation of the
accounts as the daily run makes it (judged, fields written where they changed, playbooks
moved along), then the minute job's due steps; what each would send to the CRM, and what
that costs in API calls against today's budget.

Nothing is written. Redis is read through a read-only view (integration/store/read_only.py);
the CRM is read for real through an adapter of its own, whose reads are counted and whose
writes are refused (a write here would be a bug, and it would fail before reaching the CRM).
The shared rate limiter is left out for those few reads: taking a slot writes its window to
Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, cast

from adapters import build_adapter
from adapters.budget import LABELS, BudgetStatus, Priority, budget_status
from adapters.costs import CallKind, CostModel, WritePath, local_costs
from adapters.ledger import Ledger
from adapters.protocol import CrmAccount, CrmAdapter, FieldValue
from adapters.spend import BudgetGate
from integration.config.schema import Config
from integration.errors import CrmRetriableError
from integration.jobs.account_state import fields_to_write, judge_accounts
from integration.jobs.context import Context
from integration.jobs.evaluate import EVALUATION_BATCH  # the daily run's batches
from integration.store import freshness
from integration.store.read_only import held_back, read_only
from playbooks.dry_actions import DryContext, Planned, Spend
from playbooks.dry_run import Cleared, PlannedStep, PlaybookDryRun
from playbooks.runs import Run
from playbooks.waterfall import Judged

# The adapters' calls that only read, by operation name; any other is refused here.
READ_OPERATIONS = frozenset(
    {
        "batch_read_companies",
        "search_companies",
        "get_contact",
        "get_company",
        "get_company_contacts",
        "batch_read_contacts",
        "get_owner",
        "search_tasks",
        "instance_url",
    }
)
NOT_SENT = frozenset({"instance_url"})  # answered from the login, no request of its own
SANDBOX_READS = frozenset(
    {
        "find_accounts",
        "find_account_by_domain",
        "find_contact",
        "account_by_id",
        "contact_by_id",
        "find_task",
        "user",
        "account_contacts",
    }
)


@dataclass(frozen=True, slots=True)
class AccountPlan:
    """What the next run would do for one account."""

    account_id: str
    account: CrmAccount | None  # None: the CRM has no such account (listed as unmatched)
    judged: Judged | None = None
    judged_through: date | None = None
    receiving: bool = False  # history still arriving: fields written, playbooks wait
    field_writes: Mapping[str, FieldValue] = field(default_factory=dict)
    fields_wait: str | None = None  # why the field writes wait (the API budget)
    started: list[Run] = field(default_factory=list)
    cleared: list[Cleared] = field(default_factory=list)
    steps: list[PlannedStep] = field(default_factory=list)
    released: list[Planned] = field(default_factory=list)
    waiting: list[tuple[Run, str]] = field(default_factory=list)  # with the next step's name

    @property
    def busy(self) -> bool:
        """Anything to show besides the judgement."""
        parts = (self.field_writes, self.started, self.cleared, self.steps, self.released)
        return any(parts) or bool(self.waiting)


@dataclass(frozen=True, slots=True)
class Plan:
    now: datetime
    crm: str
    playbook: str | None
    accounts: list[AccountPlan]
    calls: dict[CallKind, int]
    urgent_calls: int  # of which urgent playbooks' (they may spend the budget's reserve)
    budgeted: bool  # the CRM has a daily API allocation (the sandbox has none)
    budget: BudgetStatus | None
    bulk_waits: str | None
    held_back: dict[str, int]  # writes the read-only views kept from Redis, by command

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def dry_run(
    context: Context, account_ids: Sequence[str], playbook: str | None, now: datetime
) -> Plan:
    """The plan for these accounts (each known to Redis), or for one playbook's work."""
    view = read_only(context.redis)
    crm_view = view if context.queue_redis is context.redis else read_only(context.queue_redis)
    spend = Spend(cost_model(context.config))
    crm = read_only_crm(context, crm_view, spend)
    waits = bulk_waits(context, crm_view, now)
    urgent = frozenset(book.name for book in context.playbooks if book.spec.urgent)
    dry = DryContext(view, crm, context.config, crm_view, spend, urgent, waits)
    state = replace(context, redis=view, crm=crm, queue_redis=crm_view)
    books = PlaybookDryRun(dry, context.playbooks, set(account_ids), now)
    plans: dict[str, AccountPlan] = {}
    ids = sorted(account_ids)
    for start in range(0, len(ids), EVALUATION_BATCH):
        spend.scope = (None, None)
        plans |= _evaluate(state, dry, books, ids[start : start + EVALUATION_BATCH], now)
    books.run_due_steps()
    accounts = [_with_playbooks(plans[a], books, playbook) for a in ids]
    urgent_calls = sum(
        sum(spend.calls(name).values()) for name in urgent if playbook in (None, name)
    )
    return Plan(
        now,
        context.crm.name,
        playbook,
        [a for a in accounts if playbook is None or a.busy],
        spend.calls(playbook),
        urgent_calls,
        spend.model.budgeted,
        budget_status(crm_view, context.crm.name, context.config, now),
        waits,
        dict(held_back(view) + held_back(crm_view)),
    )


def _evaluate(
    state: Context, dry: DryContext, books: PlaybookDryRun, batch: Sequence[str], now: datetime
) -> dict[str, AccountPlan]:
    """One evaluation batch (integration/jobs/evaluate.py evaluate_accounts)."""
    found = dry.crm.find_accounts(batch)
    judged, through = judge_accounts(state, found, now)
    writes = fields_to_write(dry.redis, state.config.fields, judged)
    if not dry.bulk_waits:
        scopes = [(writes.wanted[u.crm_id][0], None) for u in writes.updates]
        dry.spend.write(WritePath.WRITE_FIELDS, scopes)
    quiet = state.config.evaluation.backfill_quiet_seconds
    receiving = freshness.receiving_history_until(dry.redis, sorted(found), now, quiet)
    whole = [item for item in judged if item.after.account_id not in receiving]
    books.advance(whole)
    books.keep(whole)
    changed = {writes.wanted[u.crm_id][0]: dict(u.values) for u in writes.updates}
    plans = {account_id: AccountPlan(account_id, None) for account_id in batch}
    for item in judged:
        account_id = item.after.account_id
        plans[account_id] = AccountPlan(
            account_id,
            item.account,
            item,
            through[account_id],
            account_id in receiving,
            changed.get(account_id, {}),
            dry.bulk_waits if account_id in changed else None,
        )
    return plans


def _with_playbooks(plan: AccountPlan, books: PlaybookDryRun, playbook: str | None) -> AccountPlan:
    def mine(name: str) -> bool:
        return playbook is None or name == playbook

    account_id = plan.account_id
    return replace(
        plan,
        field_writes=plan.field_writes if playbook is None else {},
        fields_wait=plan.fields_wait if playbook is None else None,
        started=[r for r in books.started if r.account_id == account_id and mine(r.playbook)],
        cleared=[
            c for c in books.cleared if c.run.account_id == account_id and mine(c.run.playbook)
        ],
        steps=[s for s in books.steps if s.run.account_id == account_id and mine(s.run.playbook)],
        released=[
            p
            for p in books.released
            if p.action.account_id == account_id and mine(p.action.playbook)
        ],
        waiting=[(r, _next_step(books, r)) for r in books.waiting(account_id) if mine(r.playbook)],
    )


def _next_step(books: PlaybookDryRun, run: Run) -> str:
    book = books.by_name.get(run.playbook)
    steps = book.spec.steps if book else ()
    return steps[run.next_step].name if run.next_step < len(steps) else "-"


def cost_model(config: Config) -> CostModel:
    """The API prices of `crm.kind` (adapters/<crm>/costs.py), as adapters/__init__.py picks
    the adapter."""
    if config.crm.kind == "hubspot":
        from adapters.hubspot.costs import hubspot_costs

        return hubspot_costs()
    if config.crm.kind == "salesforce":
        from adapters.salesforce.costs import salesforce_costs

        return salesforce_costs(config.crm.salesforce)
    return local_costs(config.crm.kind)


def bulk_waits(context: Context, crm_view: Any, now: datetime) -> str | None:  # noqa: ANN401
    """Why the API budget holds bulk work now (adapters/spend.py BudgetGate), or None."""
    name = context.crm.name
    if name not in LABELS:
        return None
    share = context.config.crm.salesforce.api_budget_share if name == "salesforce" else None
    gate = BudgetGate(
        Ledger(crm_view, name), name, LABELS[name], context.config.budget, share, lambda: now
    )
    try:
        gate.check("plan", Priority.BULK)
    except CrmRetriableError as exc:
        return str(exc)
    return None


class _NoSlot:
    """Stands in for the shared rate limiter: a dry run's reads take no slot (that writes)."""

    def acquire(self) -> float:
        return 0.0


def read_only_crm(context: Context, crm_view: Any, spend: Spend) -> CrmAdapter:  # noqa: ANN401
    """An adapter that reads the CRM for real, each request counted, and refuses to write."""
    if context.config.crm.kind == "sandbox":
        return cast("CrmAdapter", _CountedSandbox(context.crm, spend))
    crm = build_adapter(context.config, crm_view)
    transport = getattr(crm, "transport", None)
    for limiter in ("_limit", "_search_limit"):
        if hasattr(transport, limiter):
            setattr(transport, limiter, _NoSlot())
    call: Callable[..., Any] = crm._call  # type: ignore[attr-defined]  # HubSpot and Salesforce adapters

    def counted(operation: str, send: Callable[[Any], Any], *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        if operation not in READ_OPERATIONS and not operation.startswith("query_"):
            msg = f"integration plan does not write to the CRM (asked for {operation})"
            raise RuntimeError(msg)
        if operation not in NOT_SENT:
            spend.read()
        return call(operation, send, *args, **kwargs)

    crm._call = counted  # type: ignore[attr-defined]
    return crm


class _CountedSandbox:
    """The sandbox adapter, its reads counted (a local file: no API, no budget) and its
    writes refused."""

    def __init__(self, crm: CrmAdapter, spend: Spend) -> None:
        self._crm, self._spend = crm, spend
        self.name = crm.name

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the adapter's own methods
        found = getattr(self._crm, name)
        if name in ("record_url", "object_url"):
            return found
        if name not in SANDBOX_READS:
            msg = f"integration plan does not write to the CRM (asked for {name})"
            raise RuntimeError(msg)

        def counted(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            self._spend.read()
            return found(*args, **kwargs)

        return counted
