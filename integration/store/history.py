"""The audit trail: per account, a capped Redis stream of what happened and why, newest last.

Each entry is one event as JSON: a signal received, an assessment (reasons with their numbers),
a run started or ended, a step, an action with the CRM record it made, an outcome. The trail is
derived, never the only copy of anything: runs, assessments and tasks live in their own keys and
in the CRM. It is bounded twice (config `history`): at most `keep_entries` entries (XADD
MAXLEN, exact: an approximate trim only drops whole nodes of 100 entries, so a small cap would
never bite) and nothing older than `keep_days` (XTRIM MINID, approximate: cheap, and a day or
two over is no harm).

Kinds and their fields (every entry has `kind` and `at`, an ISO time):
- signal: source, delivery_id, summary. Usage and Segment deliveries are folded in batches
  (integration/jobs/fold_batch.py): one entry per account per fold, merged into the newest
  entry while that is the same source's within FOLD_MERGE_SECONDS, with `folded: true`,
  events, deliveries, delivery_ids (the newest DELIVERY_IDS_KEPT ingest stream ids: one per
  accepted delivery, its accept time in ms) and since (the first fold merged). People signals
  (job changes, CRM contact changes) carry the sender's event id as delivery_id; CRM webhooks
  (task completed, owner changed) the CRM's event.
- assessment: level, score, previous_level, reasons [{key, code, severity, text, details}]
- reason_cleared: key, code, text, severity
- run_started: playbook, run_id, trigger_key, reason_code, severity, control
- step: playbook, run_id, step, outcome ("ran", or why it was skipped or refused)
- action: playbook, run_id, step, action (task, note, field, notify, slack, email, sequence),
  crm_id, url, held (a cap holds it: crm_id and url are None until it goes out), subject;
  released: true on the entry written when a held task goes out (playbooks/held.py). `url`
  links the record in the CRM (CrmAdapter.object_url: HubSpot tasks and notes link their
  company's page)
- run_ended: playbook, run_id, status (cleared, completed, done), why, control
- task_completed: playbook, run_id, step, task_id, created_at, completed_at, seconds
  (created_at and seconds are None for a task made before created times were kept)
- renewal: outcome (renewed, churned), value, field
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from integration.config.schema import History
from integration.store import keys
from integration.store.cluster import StateRedis, is_cluster


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


def event(account_id: str, kind: str, at: datetime, **fields: object) -> Event:
    return Event(account_id, kind, at, fields)


def record(redis: Redis, events: Iterable[Event], keep: History) -> None:
    """Append the events (one round trip), each to its account's trail, trimming as it goes."""
    pipe = redis.pipeline(transaction=False)
    trimmed: set[str] = set()
    # Stream ids are the Redis server's clock, so the age limit is measured on the wall clock.
    oldest = datetime.now(UTC) - timedelta(days=keep.keep_days)
    for item in events:
        pipe.xadd(
            keys.history(item.account_id),
            {"e": json.dumps({"kind": item.kind, "at": item.at.isoformat(), **item.fields})},
            maxlen=keep.keep_entries,
            approximate=False,
        )
        trimmed.add(item.account_id)
    for account_id in trimmed:
        # MINID in a second call: redis-py's xadd takes maxlen or minid, not both.
        pipe.xtrim(keys.history(account_id), minid=_stream_id(oldest), approximate=True)
    if trimmed:
        pipe.execute()


# A fold's signal is merged into the newest entry while that is the same source's signal and
# began less than this long ago: an account sending all day keeps a few entries an hour, not
# one per fold, and its assessments and actions stay within keep_entries.
FOLD_MERGE_SECONDS = 3600
DELIVERY_IDS_KEPT = 5
CLUSTER_THREADS = 8  # as the fold's own scripts (integration/store/folding.py)


@dataclass(frozen=True, slots=True)
class Received:
    """What one fold brought one account: its events and the deliveries they came in."""

    account_id: str
    source: str
    at: datetime
    events: int
    delivery_ids: Sequence[str]  # ingest stream ids, oldest first (the newest few, when summed)
    deliveries: int = 0  # how many, when more than delivery_ids holds
    since: datetime | None = None  # the first fold summed in, when several are

    @property
    def count(self) -> int:
        return max(self.deliveries, len(self.delivery_ids))


# KEYS[1] the account's trail. ARGV[1] the fold's entry (JSON), ARGV[2] keep_entries, ARGV[3]
# the MINID of keep_days, ARGV[4] the oldest `since` an entry may have and still take the
# fold, ARGV[5] DELIVERY_IDS_KEPT. The newest entry, when it is the same source's folded
# signal since ARGV[4] or later, is replaced by the sum of both.
_RECEIVED = """
local fresh = cjson.decode(ARGV[1])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if newest and newest[2][1] == 'e' then
  local old = cjson.decode(newest[2][2])
  if old.kind == 'signal' and old.folded and old.source == fresh.source
      and old.since >= ARGV[4] then
    fresh.since = old.since
    fresh.events = fresh.events + old.events
    fresh.deliveries = fresh.deliveries + old.deliveries
    local ids = {}
    for _, id in ipairs(old.delivery_ids) do ids[#ids + 1] = id end
    for _, id in ipairs(fresh.delivery_ids) do ids[#ids + 1] = id end
    local kept = {}
    for i = math.max(1, #ids - tonumber(ARGV[5]) + 1), #ids do kept[#kept + 1] = ids[i] end
    fresh.delivery_ids = kept
    redis.call('XDEL', KEYS[1], newest[1])
  end
end
fresh.summary = fresh.events .. ' ' .. fresh.source .. ' event(s) in ' .. fresh.deliveries
  .. ' deliver' .. (fresh.deliveries == 1 and 'y' or 'ies')
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'e', cjson.encode(fresh))
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3])
return 1
"""


def record_received(redis: StateRedis, received: Sequence[Received], keep: History) -> None:
    """Folds' signals, an entry per account, merged as FOLD_MERGE_SECONDS says: pipelined
    on one Redis (one round trip); on a cluster, where redis-py runs no script in a pipeline,
    one call each."""
    if not received:
        return
    script = redis.register_script(_RECEIVED)
    oldest = _stream_id(datetime.now(UTC) - timedelta(days=keep.keep_days))
    calls: list[tuple[str, list[str | int]]] = []
    for item in received:
        ids = list(item.delivery_ids[-DELIVERY_IDS_KEPT:])
        entry = {
            "kind": "signal",
            "at": item.at.isoformat(),
            "source": item.source,
            "folded": True,
            "since": (item.since or item.at).isoformat(),
            "events": item.events,
            "deliveries": item.count,
            "delivery_id": ids[-1] if ids else "",
            "delivery_ids": ids,
        }
        merge_from = (item.at - timedelta(seconds=FOLD_MERGE_SECONDS)).isoformat()
        args: list[str | int] = [
            json.dumps(entry),
            keep.keep_entries,
            oldest,
            merge_from,
            DELIVERY_IDS_KEPT,
        ]
        calls.append((keys.history(item.account_id), args))
    if is_cluster(redis):
        with ThreadPoolExecutor(max_workers=CLUSTER_THREADS) as pool:
            list(pool.map(lambda call: script(keys=[call[0]], args=call[1]), calls))
        return
    pipe = redis.pipeline(transaction=False)
    for name, args in calls:
        script(keys=[name], args=args, client=pipe)
    pipe.execute()


def read(
    redis: Redis, account_id: str, limit: int | None = None, since: datetime | None = None
) -> list[Event]:
    """The account's trail, newest first (`since`: events at or after it)."""
    entries: Any = redis.xrevrange(keys.history(account_id), "+", "-", count=limit)
    found = [_event(account_id, fields) for _, fields in entries or ()]
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
