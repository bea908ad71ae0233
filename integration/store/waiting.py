"""Accounts waiting for evaluation: the dirty set (scored by when each account's live usage
first changed, or its history last did, so only settled ones are taken), the processing set a
worker holds them in, and when the dirty-account evaluation last ran (it runs at most once per
interval)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import cast

from redis import Redis

from integration.store import keys

_TAKE_DIRTY = """
local now, interval = tonumber(ARGV[2]), tonumber(ARGV[4])
if interval > 0 then
  local last = tonumber(redis.call('GET', KEYS[3]))
  if last and now - last < interval then return {} end
end
local taken = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, ARGV[1])
for _, account in ipairs(taken) do
  redis.call('ZREM', KEYS[1], account)
  redis.call('ZADD', KEYS[2], now, account)
end
if interval > 0 and #taken > 0 then redis.call('SET', KEYS[3], now, 'EX', 2 * interval) end
return taken
"""
_REQUEUE_STALE = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, account in ipairs(stale) do
  redis.call('ZADD', KEYS[1], 'NX', 0, account)
  redis.call('ZREM', KEYS[2], account)
end
-- Accounts a release before 2026-12 left waiting in its plain set join the sorted one.
if redis.call('TYPE', KEYS[3])['ok'] == 'set' then
  for _, account in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    redis.call('ZADD', KEYS[1], 'NX', 0, account)
  end
  redis.call('DEL', KEYS[3])
end
return #stale
"""
_RELEASE = """
for _, account in ipairs(ARGV) do
  redis.call('ZADD', KEYS[1], 'NX', 0, account)
  redis.call('ZREM', KEYS[2], account)
end
"""


def take_dirty_accounts(
    redis: Redis, limit: int, now: datetime, settle_seconds: int = 0, interval_seconds: int = 0
) -> list[str]:
    """Take up to `limit` accounts with new usage whose rollups have not changed for
    `settle_seconds` (the rest wait); they stay in a processing set until finished, so a worker
    that dies mid-batch loses nothing (requeue_stale_accounts puts them back).

    With `interval_seconds`, this is the first batch of a run: nothing is taken when accounts
    were taken less than that long before `now`, and taking any records the run."""
    taken = redis.eval(
        _TAKE_DIRTY,
        3,
        keys.dirty_accounts(),
        keys.processing_accounts(),
        keys.evaluation_ran(),
        limit,
        now.timestamp(),
        now.timestamp() - settle_seconds,
        interval_seconds,
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


def finish_accounts(redis: Redis, account_ids: Sequence[str]) -> None:
    if account_ids:
        redis.zrem(keys.processing_accounts(), *account_ids)


def release_accounts(redis: Redis, account_ids: Sequence[str]) -> None:
    """Hand accounts back to the dirty set after a failed evaluation (settled: it took them)."""
    if account_ids:
        redis.eval(_RELEASE, 2, keys.dirty_accounts(), keys.processing_accounts(), *account_ids)


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
    """Put back accounts a worker took before `older_than` and never finished (it died)."""
    stale = redis.eval(
        _REQUEUE_STALE,
        3,
        keys.dirty_accounts(),
        keys.processing_accounts(),
        keys.legacy_dirty_accounts(),
        older_than.timestamp(),
    )
    return int(stale)


def remember_account(redis: Redis, account_id: str) -> None:
    redis.sadd(keys.known_accounts(), account_id)


def mark_all_accounts_dirty(redis: Redis) -> int:
    """Queue every known account for evaluation: quiet accounts must be judged too. An account
    still settling keeps its time (a known account's weight 0 loses to it)."""
    dirty = keys.dirty_accounts()
    return int(redis.zunionstore(dirty, {dirty: 1, keys.known_accounts(): 0}, aggregate="MAX"))
