"""`integration history ACCOUNT`: the account's audit trail, newest first, one line an entry:
what came in (source and delivery id), how it was judged (the reasons with their numbers),
which playbook step ran, what it made in the CRM (the record id and a link), and the outcome.

The trail is integration/store/history.py; its docstring lists the entries and their fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from integration.cli.errors import CliError
from integration.jobs.context import Context
from integration.store import history
from integration.store.history import Event

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
KIND_WIDTH = 14  # the longest kind, task_completed


def render_history(context: Context, account_id: str, *, limit: int, as_json: bool) -> str:
    """The newest `limit` entries of the account's trail: text, or one JSON object a line."""
    if limit < 1:
        msg = f"--limit must be 1 or more, got {limit}"
        raise CliError(msg)
    # Newest first by time: an entry written late (a fold's signal held, a webhook the CRM
    # retried) goes where its time puts it; entries of one moment keep the order they were
    # written. So the whole trail (capped: a few hundred entries) is sorted, then cut.
    trail = history.read(context.redis, account_id, keep=context.config.history)
    events = sorted(trail, key=lambda e: e.at, reverse=True)[:limit]
    if not events:
        msg = (
            f"no history for account {account_id!r}: nothing was received or done for it "
            f"since the trail began (keep_days {context.config.history.keep_days}); check the "
            "id (`integration evaluate --account ID` judges it now)"
        )
        raise CliError(msg)
    if as_json:
        return "\n".join(json.dumps(item.to_json(), sort_keys=True) for item in events)
    return "\n".join(line(item) for item in events)


def line(item: Event) -> str:
    """`time  kind  what it says`, the time in UTC."""
    describe = DESCRIBE.get(item.kind, _other)
    at = item.at.strftime(TIME_FORMAT)
    return f"{at}  {item.kind:<{KIND_WIDTH}}  {describe(item.fields)}"


def _signal(fields: Mapping[str, Any]) -> str:
    source, summary = fields.get("source", "?"), fields.get("summary", "")
    if fields.get("folded"):
        ids = fields.get("delivery_ids") or []
        shown = ", ".join(str(i) for i in ids) if isinstance(ids, list) else ""
        more = int(fields.get("deliveries", 0)) - len(ids) if isinstance(ids, list) else 0
        extra = f" and {more} more" if more > 0 else ""
        return f"{source}: {summary} (deliveries {shown}{extra})"
    return f"{source}: {summary} (delivery {fields.get('delivery_id', '?')})"


def _assessment(fields: Mapping[str, Any]) -> str:
    was = fields.get("previous_level")
    level = f"risk {fields.get('level')}" + (f" (was {was})" if was else "")
    reasons = fields.get("reasons") or []
    said = "; ".join(
        f"{r.get('key')} [{r.get('severity')}]: {str(r.get('text', '')).removesuffix('.')}"
        for r in reasons
    )
    return f"{level}, score {fields.get('score')}: {said or 'nothing flagged'}"


def _reason_cleared(fields: Mapping[str, Any]) -> str:
    return f"{fields.get('key')} cleared (was: {fields.get('text')})"


def _run_started(fields: Mapping[str, Any]) -> str:
    group = " (control group: tracked, no action)" if fields.get("control") else ""
    return (
        f"{fields.get('playbook')} started by {fields.get('trigger_key')} "
        f"[{fields.get('severity')}]{group}"
    )


def _step(fields: Mapping[str, Any]) -> str:
    return f"{fields.get('playbook')} step {fields.get('step')}: {fields.get('outcome')}"


def _action(fields: Mapping[str, Any]) -> str:
    where = f"{fields.get('playbook')} step {fields.get('step')}: {fields.get('action')}"
    if fields.get("held"):
        made = "held by a cap until a later working day"
    else:
        made = f"-> {fields.get('crm_id')}"
        if fields.get("url"):
            made += f" {fields['url']}"
        if fields.get("released"):
            made = f"released from a cap {made}"
    subject = fields.get("subject")
    return f"{where} {made}" + (f' "{subject}"' if subject else "")


def _run_ended(fields: Mapping[str, Any]) -> str:
    return f"{fields.get('playbook')} {fields.get('status')}: {fields.get('why')}"


def _run_treated(fields: Mapping[str, Any]) -> str:
    return (
        f"{fields.get('playbook')} leaves its control group, treated from now: {fields.get('why')}"
    )


def _task_completed(fields: Mapping[str, Any]) -> str:
    seconds = fields.get("seconds")
    took = f" {duration(float(seconds))} after it was created" if seconds is not None else ""
    return (
        f"{fields.get('playbook')} step {fields.get('step')}: task {fields.get('task_id')} "
        f"completed{took}"
    )


def _renewal(fields: Mapping[str, Any]) -> str:
    return f"{fields.get('outcome')} ({fields.get('field')} = {fields.get('value')})"


def _other(fields: Mapping[str, Any]) -> str:
    return json.dumps(dict(fields), sort_keys=True)


def duration(seconds: float) -> str:
    """2d 3h, 4h 10m, 12m, 40s: the two largest units."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


DESCRIBE: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "signal": _signal,
    "assessment": _assessment,
    "reason_cleared": _reason_cleared,
    "run_started": _run_started,
    "step": _step,
    "action": _action,
    "run_ended": _run_ended,
    "run_treated": _run_treated,
    "task_completed": _task_completed,
    "renewal": _renewal,
}
