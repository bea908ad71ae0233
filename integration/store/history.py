"""The audit trail: per account, a capped Redis stream of what happened and why, newest last.

Each entry is one event as JSON: a signal received, an assessment (reasons with their numbers),
a run started or ended, a step, an action with the CRM record it made, an outcome. The trail is
derived, never the only copy of anything: runs, assessments and tasks live in their own keys and
in the CRM. It is bounded twice (config `history`): at most `keep_entries` entries and nothing
older than `keep_days` (XADD MAXLEN and MINID, both approximate, so trimming stays cheap).

Kinds and their fields (every entry has `kind` and `at`, an ISO time):
- signal: source, delivery_id, summary
- assessment: level, score, previous_level, reasons [{key, code, severity, text, details}]
- reason_cleared: key, code, text
- run_started: playbook, run_id, trigger_key, reason_code, severity, control
- step: playbook, run_id, step, outcome ("ran", or why it was skipped)
- action: playbook, run_id, step, action (task, note, field, notify, slack, email, sequence),
  crm_id, url, held (a cap holds it), subject
- run_ended: playbook, run_id, status (cleared, completed, done), why
- task_completed: playbook, run_id, task_id, created_at, completed_at, seconds
- renewal: outcome (renewed, churned), value
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from integration.config.schema import History
from integration.store import keys


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of an account's trail."""

    account_id: str
    kind: str
    at: datetime
    fields: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "kind": self.kind, "at": self.at.isoformat()} | {
            **self.fields
        }


def event(account_id: str, kind: str, at: datetime, **fields: Any) -> Event:
    return Event(account_id, kind, at, fields)


def record(redis: Redis, events: Iterable[Event], keep: History) -> None:
    """Append the events (one round trip), each to its account's trail, trimming as it goes."""
    pipe = redis.pipeline(transaction=False)
    added = False
    # Stream ids are the Redis server's clock, so the age limit is measured on the wall clock.
    oldest = datetime.now(UTC) - timedelta(days=keep.keep_days)
    for item in events:
        pipe.xadd(
            keys.history(item.account_id),
            {"e": json.dumps({"kind": item.kind, "at": item.at.isoformat(), **item.fields})},
            maxlen=keep.keep_entries,
            approximate=True,
        )
        # MINID in a second call: redis-py's xadd takes maxlen or minid, not both.
        pipe.xtrim(keys.history(item.account_id), minid=_stream_id(oldest), approximate=True)
        added = True
    if added:
        pipe.execute()


def read(
    redis: Redis, account_id: str, limit: int | None = None, since: datetime | None = None
) -> list[Event]:
    """The account's trail, newest first (`since`: events at or after it)."""
    entries = redis.xrevrange(keys.history(account_id), "+", "-", count=limit)
    found = [_event(account_id, fields) for _, fields in entries]
    return [item for item in found if since is None or item.at >= since]


def read_many(
    redis: Redis, account_ids: Sequence[str], since: datetime | None = None
) -> dict[str, list[Event]]:
    """Several accounts' trails in one round trip (a pipeline: each on its own node in a
    cluster), oldest first (`since`: events at or after it)."""
    pipe = redis.pipeline(transaction=False)
    for account_id in account_ids:
        pipe.xrange(keys.history(account_id), "-", "+")
    answers = pipe.execute() if account_ids else []
    trails = {}
    for account_id, entries in zip(account_ids, answers, strict=True):
        found = [_event(account_id, fields) for _, fields in entries]
        trails[account_id] = [item for item in found if since is None or item.at >= since]
    return trails


def _event(account_id: str, fields: Mapping[bytes | str, bytes | str]) -> Event:
    raw = json.loads(keys.text(fields.get(b"e") or fields.get("e") or b"{}"))
    kind = str(raw.pop("kind", "unknown"))
    at = datetime.fromisoformat(str(raw.pop("at", "1970-01-01T00:00:00+00:00")))
    return Event(account_id, kind, at if at.tzinfo else at.replace(tzinfo=UTC), raw)


def _stream_id(moment: datetime) -> str:
    """A stream id at `moment` (ids are the time Redis added the entry)."""
    return f"{max(0, int(moment.timestamp() * 1000))}-0"
