"""Accounts waiting for evaluation: the dirty set (scored by when each account's live usage
first changed, or its history last did, so only settled ones are taken), the processing set a
worker holds them in (with which batch holds each, and each batch's lease), and when the
dirty-account evaluation last ran (it runs at most once per interval)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from redis import Redis

from integration.store import keys
from integration.store.cluster import is_cluster

KNOWN_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a batch of accounts (an id per evaluation run), and for how long a renewal
    keeps them (integration/jobs/holding.py renews it while the worker lives)."""

    holder: str
    length: timedelta


_TAKE_DIRTY = """
local now, interval, holder = tonumber(ARGV[2]), tonumber(ARGV[4]), ARGV[5]
if interval > 0 then
  local last = tonumber(redis.call('GET', KEYS[3]))
  if last and now - last < interval then return {} end
end
local taken = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, ARGV[1])
for _, account in ipairs(taken) do
  redis.call('ZREM', KEYS[1], account)
  redis.call('ZADD', KEYS[2], now, account)
  if holder ~= '' then redis.call('HSET', KEYS[4], account, holder) end
end
if holder ~= '' and #taken > 0 then redis.call('ZADD', KEYS[5], ARGV[6], holder) end
if interval > 0 and #taken > 0 then redis.call('SET', KEYS[3], now, 'EX', 2 * interval) end
return taken
"""
_REQUEUE_STALE = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local requeued = 0
for _, account in ipairs(stale) do
  -- A held account is released by its lease (release_abandoned_accounts), never by its age.
  if redis.call('HEXISTS', KEYS[3], account) == 0 then
    redis.call('ZADD', KEYS[1], 'NX', 0, account)
    redis.call('ZREM', KEYS[2], account)
    requeued = requeued + 1
  end
end
return requeued
"""
# ARGV: the holder ('' for any), back to the dirty set (1) or done (0), the accounts. Only the
# accounts the holder still holds: one a lapsed lease released may be another batch's by now.
_LET_GO = """
for i = 3, #ARGV do
  local account = ARGV[i]
  if ARGV[1] == '' or redis.call('HGET', KEYS[3], account) == ARGV[1] then
    if ARGV[2] == '1' then redis.call('ZADD', KEYS[1], 'NX', 0, account) end
    redis.call('ZREM', KEYS[2], account)
    redis.call('HDEL', KEYS[3], account)
  end
end
"""
_RELEASE_ABANDONED = """
local now, released = tonumber(ARGV[1]), 0
local holders = redis.call('HGETALL', KEYS[3])
for i = 1, #holders, 2 do
  local expires = tonumber(redis.call('ZSCORE', KEYS[4], holders[i + 1]))
  if not expires or expires <= now then
    redis.call('ZADD', KEYS[1], 'NX', 0, holders[i])
    redis.call('ZREM', KEYS[2], holders[i])
    redis.call('HDEL', KEYS[3], holders[i])
    released = released + 1
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
-- The dead run's interval is given back: what it held is judged at once, not an interval later.
if released > 0 then redis.call('DEL', KEYS[5]) end
return released
"""


def take_dirty_accounts(
    redis: Redis,
    limit: int,
    now: datetime,
    settle_seconds: int = 0,
    interval_seconds: int = 0,
    lease: Lease | None = None,
    settled_by: datetime | None = None,
) -> list[str]:
    """Take up to `limit` accounts with new usage whose rollups have not changed for
    `settle_seconds` before `settled_by` (default `now`: the rest of a run takes only what had
    settled when the run began, what changed since is the next interval's); the rest wait.
    Taken accounts stay in a processing set until finished, so a worker
    that dies mid-batch loses nothing. With a `lease`, the accounts are held by its holder
    until it runs out (release_abandoned_accounts); without, for STALE_PROCESSING (the rule of
    releases before 2026-12: requeue_stale_accounts).

    With `interval_seconds`, this is the first batch of a run: nothing is taken when accounts
    were taken less than that long before `now`, and taking any records the run."""
    taken = redis.eval(
        _TAKE_DIRTY,
        5,
        keys.dirty_accounts(),
        keys.processing_accounts(),
        keys.evaluation_ran(),
        keys.processing_holders(),
        keys.batch_leases(),
        limit,
        now.timestamp(),
        (settled_by or now).timestamp() - settle_seconds,
        interval_seconds,
        lease.holder if lease else "",
        (now + lease.length).timestamp() if lease else 0,
    )
    return sorted(keys.text(item) for item in taken or [])


def next_evaluation_due(redis: Redis, settle_seconds: int, interval_seconds: int) -> float | None:
    """When (Unix seconds) an evaluation could next take a waiting account: once the earliest
    changed one has settled and the interval since the last run is over; None: none waits."""
    pipe = redis.pipeline(transaction=False)
    pipe.zrange(keys.dirty_accounts(), 0, 0, withscores=True)
    pipe.get(keys.evaluation_ran())
    earliest, last_run = pipe.execute()
    if not earliest:
        return None
    ran = float(last_run) if last_run is not None else 0.0
    return max(float(earliest[0][1]) + settle_seconds, ran + interval_seconds)


def finish_accounts(redis: Redis, account_ids: Sequence[str], holder: str = "") -> None:
    """Evaluated: out of the processing set (those `holder` still holds, when named)."""
    if account_ids:
        _let_go(redis, account_ids, holder, back=False)


def release_accounts(redis: Redis, account_ids: Sequence[str], holder: str = "") -> None:
    """Hand accounts back to the dirty set after a failed evaluation (settled: it took them)."""
    if account_ids:
        _let_go(redis, account_ids, holder, back=True)


def _let_go(redis: Redis, account_ids: Sequence[str], holder: str, back: bool) -> None:
    dirty, processing, holders = (
        keys.dirty_accounts(),
        keys.processing_accounts(),
        keys.processing_holders(),
    )
    redis.eval(_LET_GO, 3, dirty, processing, holders, holder, int(back), *account_ids)


def renew_lease(redis: Redis, lease: Lease, now: datetime) -> bool:
    """Extend a held lease from `now`; False when it is not held (ended, or it ran out and the
    accounts were released: the batch is no longer this holder's alone)."""
    expires = (now + lease.length).timestamp()
    return bool(redis.zadd(keys.batch_leases(), {lease.holder: expires}, xx=True, ch=True))


def end_lease(redis: Redis, lease: Lease) -> None:
    redis.zrem(keys.batch_leases(), lease.holder)


def release_abandoned_accounts(redis: Redis, now: datetime) -> int:
    """Put back accounts whose holder's lease ran out before `now` (its worker died, or lost
    Redis for longer than the lease), and give back the interval their run claimed."""
    released = redis.eval(
        _RELEASE_ABANDONED,
        5,
        keys.dirty_accounts(),
        keys.processing_accounts(),
        keys.processing_holders(),
        keys.batch_leases(),
        keys.evaluation_ran(),
        now.timestamp(),
    )
    return int(released)


def wait_until(redis: Redis, due: Mapping[str, float], settle_seconds: int) -> None:
    """Put accounts back in the dirty set, to be taken at `due` (a score settle_seconds before)."""
    if due:
        scores = {account: when - settle_seconds for account, when in due.items()}
        redis.zadd(keys.dirty_accounts(), scores, gt=True)


def mark_dirty(redis: Redis, account_ids: Sequence[str]) -> None:
    """Queue accounts for evaluation with nothing new to settle (a waiting one keeps its time)."""
    if account_ids:
        redis.zadd(keys.dirty_accounts(), dict.fromkeys(account_ids, 0), nx=True)


def waiting_accounts(redis: Redis) -> set[str]:
    """Accounts marked for evaluation, settled or not."""
    waiting = cast("list[bytes]", redis.zrange(keys.dirty_accounts(), 0, -1))
    return {keys.text(account) for account in waiting}


def requeue_stale_accounts(redis: Redis, older_than: datetime) -> int:
    """Put back accounts a worker took, with no lease, before `older_than` and never finished
    (a worker of a release before 2026-12 that died)."""
    stale = redis.eval(
        _REQUEUE_STALE,
        3,
        keys.dirty_accounts(),
        keys.processing_accounts(),
        keys.processing_holders(),
        older_than.timestamp(),
    )
    return int(stale)


def remember_account(redis: Redis, account_id: str) -> None:
    redis.sadd(keys.known_accounts(), account_id)


def mark_all_accounts_dirty(redis: Redis) -> int:
    """Queue every known account for evaluation: quiet accounts must be judged too. An account
    still settling keeps its time (a known account's weight 0 loses to it). On a cluster the
    known set is in another slot than the dirty one, so it is read in chunks and added with
    NX (the same result: scores are never below 0), not in one ZUNIONSTORE."""
    dirty = keys.dirty_accounts()
    if not is_cluster(redis):
        return int(redis.zunionstore(dirty, {dirty: 1, keys.known_accounts(): 0}, aggregate="MAX"))
    cursor = None
    while cursor != 0:
        cursor, chunk = redis.sscan(keys.known_accounts(), cursor or 0, count=KNOWN_CHUNK)
        if chunk:
            redis.zadd(dirty, {keys.text(account): 0 for account in chunk}, nx=True)
    return int(redis.zcard(dirty))
