"""The audit trail: per account, capped Redis streams of what happened and why, newest last.

Each entry is one event as JSON: a signal received, an assessment (reasons with their numbers),
a run started or ended, a step, an action with the CRM record it made, an outcome. The trail is
derived, never the only copy of anything: runs, assessments and tasks live in their own keys and
in the CRM, outcomes (task completed, renewal) in the account's outcomes list too
(keys.outcomes).

Two streams per account, read as one (`read`): the folded usage and Segment signals
(keys.signal_trail, written by `record_received`), which a busy account sends all day, and
everything else (keys.history, written by `record`): assessments, runs, steps, actions,
outcomes, people and CRM signals. Each is capped apart (config `history`): at most
`keep_signals` signals and `keep_entries` other entries (XADD MAXLEN, exact: an approximate
trim only drops whole nodes of 100 entries, so a small cap would never bite), so no amount of
usage pushes out why a task was made. Nothing older than `keep_days` is kept or shown: each
write trims by age exactly (XTRIM MINID: the streams are small), sets the stream to expire
`keep_days` after it (a dormant account's trail goes), and `read` given `keep` leaves older
entries out. Age is when an entry was written (its stream id, the Redis server's clock).

Kinds and their fields (every entry has `kind` and `at`, an ISO time):
- signal: source, delivery_id, summary. Usage and Segment deliveries are folded in batches
  (integration/jobs/fold_batch.py, held by integration/jobs/fold_signals.py): one entry per
  account per fold, merged into the account's newest signal while that is the same source's,
  began within FOLD_MERGE_SECONDS and nothing else was recorded since, with `folded: true`,
  events, deliveries, delivery_ids (the newest DELIVERY_IDS_KEPT ingest stream ids: one per
  accepted delivery, its accept time in ms) and since (the first fold merged). People signals
  (job changes, CRM contact changes) carry the sender's event id as delivery_id; CRM webhooks
  (task completed, owner changed) the CRM's event.
- assessment: level, score, previous_level, reasons [{key, code, severity, text, details}];
  written when the level or reasons changed, and not again while the newest assessment in the
  trail says the same (a retried evaluation: integration/jobs/trail.py)
- reason_cleared: key, code, text, severity (with the assessment that no longer has it)
- run_started: playbook, run_id, trigger_key, reason_code, severity, control. A retried
  evaluation may write a run's entry again (the report counts a run_id once)
- run_treated: playbook, run_id, why: a control run switched to treated (the admin lowered
  control_pct or set `control: never`); counted as treated, not control, from then on
- step: playbook, run_id, step, outcome ("ran", or why it was skipped or refused)
- action: playbook, run_id, step, action (task, note, field, notify, slack, email, sequence),
  crm_id, url, held (a cap holds it: crm_id and url are None until it goes out), subject;
  released: true on the entry written when a held task goes out (playbooks/held.py). `url`
  links the record in the CRM (CrmAdapter.object_url: HubSpot tasks and notes link their
  company's page)
- run_ended: playbook, run_id, status (cleared, completed, done), why, control
- task_completed: playbook, run_id, step, task_id, created_at, completed_at, seconds
  (created_at and seconds are None for a task made before created times were kept). Once a
  task: only a completion that closes one of our open tasks (keys.open_tasks) is an outcome,
  not a task the playbook completed itself, nor one completed again
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
from redis.commands.core import Script

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


def record(redis: StateRedis, events: Iterable[Event], keep: History) -> None:
    """Append the events, each to its account's trail, trimming as it goes: at most
    keep_entries, none older than keep_days, the stream expiring keep_days after. Each entry's
    id is later than the newest of both the account's streams (see _ENTRY), so the trail reads
    in the order things were written even within one millisecond."""
    script = redis.register_script(_ENTRY)
    oldest = _oldest_id(keep)
    calls: list[tuple[list[str], list[str | int]]] = [
        (
            [keys.history(item.account_id), keys.signal_trail(item.account_id)],
            [
                json.dumps({"kind": item.kind, "at": item.at.isoformat(), **item.fields}),
                keep.keep_entries,
                oldest,
                _keep_ms(keep),
            ],
        )
        for item in events
    ]
    _run(redis, script, calls)


# Both streams' newest ids (KEYS[1], KEYS[2]) and the server's clock give the next id: later
# than all three, as XADD's own '*' is later than its own stream's only.
_NEXT_ID = """
local function id_of(entry)
  local dash = string.find(entry[1], '-', 1, true)
  return tonumber(string.sub(entry[1], 1, dash - 1)), tonumber(string.sub(entry[1], dash + 1))
end
local time = redis.call('TIME')
local ms, seq = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000), 0
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local other = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
for _, entry in pairs({newest or false, other or false}) do
  if entry then
    local m, s = id_of(entry)
    if m > ms or (m == ms and s + 1 > seq) then ms, seq = m, s + 1 end
  end
end
"""

_ENTRY = (
    _NEXT_ID
    + """
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[2], string.format('%.0f-%.0f', ms, seq),
  'e', ARGV[1])
if type(added) == 'table' and added.err then  -- an id deleted by hand was newer: the next one
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'e', ARGV[1])
end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
)


Calls = Sequence[tuple[list[str], list[str | int]]]  # a script's keys and args, per call


def _run(redis: StateRedis, script: Script, calls: Calls) -> None:
    """The script once per call: pipelined on one Redis (one round trip); on a cluster, where
    redis-py runs no script in a pipeline, one call each (from a few threads)."""
    if not calls:
        return
    if is_cluster(redis):
        with ThreadPoolExecutor(max_workers=CLUSTER_THREADS) as pool:
            list(pool.map(lambda call: script(keys=call[0], args=call[1]), calls))
        return
    pipe = redis.pipeline(transaction=False)
    for names, args in calls:
        script(keys=names, args=args, client=pipe)
    pipe.execute()


# A fold's signal is merged into the account's newest signal while that is the same source's
# and began less than this long ago: an account sending all day keeps one entry an hour, not
# one per fold (its signals have a stream of their own, so they never push out the rest).
FOLD_MERGE_SECONDS = 3600
DELIVERY_IDS_KEPT = 5
CLUSTER_THREADS = 8  # as the fold's own scripts (integration/store/folding.py)
MAX_COUNT = 100_000  # no stream holds more (config `history`), nor is a larger COUNT sent


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


# KEYS[1] the account's signal trail, KEYS[2] the rest of its trail. ARGV[1] the fold's entry
# (JSON), ARGV[2] keep_signals, ARGV[3] the MINID of keep_days, ARGV[4] the oldest `since` an
# entry may have and still take the fold, ARGV[5] DELIVERY_IDS_KEPT, ARGV[6] keep_days in ms.
# The newest signal, when it is the same source's folded signal since ARGV[4] or later and
# nothing was written to the rest of the trail after it, is replaced by the sum of both. The
# entry's id is the server's time, past both streams' newest ids, so `read` orders the two
# streams as written (the rest of the trail's own ids: see _order).
_RECEIVED = (
    _NEXT_ID
    + """
local fresh = cjson.decode(ARGV[1])
local quiet = not other
if newest and other then
  local nm, ns = id_of(newest)
  local om, os = id_of(other)
  quiet = om < nm or (om == nm and os < ns)
end
if newest and newest[2][1] == 'e' and quiet then
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
local entry = cjson.encode(fresh)
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[2], string.format('%.0f-%.0f', ms, seq),
  'e', entry)
if type(added) == 'table' and added.err then  -- an id deleted by hand was newer: the next one
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'e', entry)
end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""
)


def record_received(redis: StateRedis, received: Sequence[Received], keep: History) -> None:
    """Folds' signals, an entry per account, merged as FOLD_MERGE_SECONDS says: pipelined
    on one Redis (one round trip); on a cluster, where redis-py runs no script in a pipeline,
    one call each."""
    if not received:
        return
    script = redis.register_script(_RECEIVED)
    oldest = _oldest_id(keep)
    calls: list[tuple[list[str], list[str | int]]] = []
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
            keep.keep_signals,
            oldest,
            merge_from,
            DELIVERY_IDS_KEPT,
            _keep_ms(keep),
        ]
        calls.append(([keys.signal_trail(item.account_id), keys.history(item.account_id)], args))
    _run(redis, script, calls)


def read(
    redis: Redis,
    account_id: str,
    limit: int | None = None,
    since: datetime | None = None,
    keep: History | None = None,
) -> list[Event]:
    """The account's trail, its signals and the rest merged, newest written first (`since`:
    events at or after it; `keep`: none written more than keep_days ago). One round trip."""
    oldest = _oldest_id(keep) if keep else "-"
    count = limit if limit is not None and limit <= MAX_COUNT else None
    pipe = redis.pipeline(transaction=False)  # one account's keys: one slot
    pipe.xrevrange(keys.history(account_id), "+", oldest, count=count)
    pipe.xrevrange(keys.signal_trail(account_id), "+", oldest, count=count)
    rest, signals = pipe.execute()
    ordered = [(_order(entry_id, 1), fields) for entry_id, fields in rest or ()]
    ordered += [(_order(entry_id, 0), fields) for entry_id, fields in signals or ()]
    ordered.sort(key=lambda pair: pair[0], reverse=True)
    found = [_event(account_id, fields) for _, fields in ordered[:count]]
    return [item for item in found if since is None or item.at >= since]


def read_many(
    redis: Redis,
    account_ids: Sequence[str],
    since: datetime | None = None,
    keep: History | None = None,
) -> dict[str, list[Event]]:
    """Several accounts' trails without their folded usage and Segment signals (what the
    report counts: runs, steps, actions, assessments, outcomes), in one round trip (a
    pipeline: each on its own node in a cluster), oldest first (`since`: events at or after
    it; `keep`: none written more than keep_days ago)."""
    oldest = _oldest_id(keep) if keep else "-"
    pipe = redis.pipeline(transaction=False)
    for account_id in account_ids:
        pipe.xrange(keys.history(account_id), oldest, "+")
    answers = pipe.execute() if account_ids else []
    trails = {}
    for account_id, entries in zip(account_ids, answers, strict=True):
        found = [_event(account_id, fields) for _, fields in entries]
        trails[account_id] = [item for item in found if since is None or item.at >= since]
    return trails


# How far back `newest` looks in each trail: past the entries one evaluation's playbooks write.
NEWEST_LOOK_BACK = 50


def newest(redis: Redis, account_ids: Sequence[str], kind: str) -> dict[str, Event]:
    """Each account's newest entry of `kind` among its last NEWEST_LOOK_BACK entries (signals
    aside), where it has one; one round trip."""
    pipe = redis.pipeline(transaction=False)
    for account_id in account_ids:
        pipe.xrevrange(keys.history(account_id), "+", "-", count=NEWEST_LOOK_BACK)
    answers = pipe.execute() if account_ids else []
    found = {}
    for account_id, entries in zip(account_ids, answers, strict=True):
        events = (_event(account_id, fields) for _, fields in entries)
        match = next((item for item in events if item.kind == kind), None)
        if match is not None:
            found[account_id] = match
    return found


def _event(account_id: str, fields: Mapping[bytes | str, bytes | str]) -> Event:
    raw = json.loads(keys.text(fields.get(b"e") or fields.get("e") or b"{}"))
    kind = str(raw.pop("kind", "unknown"))
    at = datetime.fromisoformat(str(raw.pop("at", "1970-01-01T00:00:00+00:00")))
    return Event(account_id, kind, at if at.tzinfo else at.replace(tzinfo=UTC), raw)


def _order(entry_id: bytes | str, stream: int) -> tuple[int, int, int]:
    """Where an entry goes among both streams': by its id, a signal's id being past every id
    before it in both (_RECEIVED); an entry of the rest given the same id as a signal (Redis
    names it, from its own stream's newest) came after it. Only two signals and an entry of
    the rest within one millisecond may be shown out of the order they were written."""
    ms, _, seq = keys.text(entry_id).partition("-")
    return int(ms), int(seq or 0), stream


def _oldest_id(keep: History) -> str:
    """The stream id of the oldest entry keep_days still keeps (ids are the server's clock)."""
    return _stream_id(datetime.now(UTC) - timedelta(days=keep.keep_days))


def _keep_ms(keep: History) -> int:
    return keep.keep_days * 86_400_000


def _stream_id(moment: datetime) -> str:
    """A stream id at `moment` (ids are the time Redis added the entry)."""
    return f"{max(0, int(moment.timestamp() * 1000))}-0"
