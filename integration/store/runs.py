"""Playbook runs in Redis: each account's runs, and the steps due, durably.

A run is JSON (playbooks/runs.py says what it holds), with a version. Saving compares the
stored version first, so two workers moving the same run (a duplicate job, the evaluation
clearing it while a step runs) never undo each other: the one whose view is stale is told so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from redis import Redis

from integration.store import keys

SEPARATOR = "\x1f"
STEP_CLAIM_SECONDS = 300

# Save ARGV[2] (the run) in field ARGV[1] if the stored run is still the one the caller read:
# for a new run (ARGV[3] == ''), none active in the slot; else the stored run is run ARGV[4]
# at version ARGV[3].
# One key only (the account's hash), so a Redis Cluster keeps it in one slot.
_SAVE = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == '' then
  if stored and cjson.decode(stored)['status'] == 'active' then return 0 end
else
  if not stored then return 0 end
  local old = cjson.decode(stored)
  if tostring(old['version'] or 0) ~= ARGV[3] or old['run_id'] ~= ARGV[4] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def day_number(day: date) -> int:
    return day.toordinal()


def load_runs(redis: Redis, account_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every account's runs by slot, in one round trip."""
    pipe = redis.pipeline(transaction=False)
    for account_id in account_ids:
        pipe.hgetall(keys.playbook_runs(account_id))
    replies = pipe.execute()
    return {
        account_id: {keys.text(slot): json.loads(raw) for slot, raw in reply.items()}
        for account_id, reply in zip(account_ids, replies, strict=True)
    }


def save_run(
    redis: Redis,
    account_id: str,
    slot: str,
    run: dict[str, Any],
    expected_version: int | None,
    due: date | None,
) -> bool:
    """Store the run if nobody moved it since it was read (`expected_version` None: a new run,
    refused while an active one holds the slot), one version on; schedule its next step for
    `due`. The schedule is written before a save and cleared after one, so a crash between
    leaves an entry the minute job drops, never a run that waits unscheduled."""
    member = f"{account_id}{SEPARATOR}{slot}"
    if due is not None:  # never later than it was: a refused save must not delay the step
        redis.zadd(keys.steps_due(), {member: day_number(due)}, lt=True)
    stored = {**run, "version": (expected_version or 0) + 1}
    saved = bool(
        redis.eval(
            _SAVE,
            1,
            keys.playbook_runs(account_id),
            slot,
            json.dumps(stored),
            "" if expected_version is None else str(expected_version),
            str(run["run_id"]),
        )
    )
    if saved and due is None:
        redis.zrem(keys.steps_due(), member)
    elif saved and due is not None:
        redis.zadd(keys.steps_due(), {member: day_number(due)})  # exactly its due day
    return saved


def schedule(redis: Redis, account_id: str, slot: str, due: date) -> None:
    """Put a run's entry back at its real due day (an entry left early by a crash)."""
    redis.zadd(keys.steps_due(), {f"{account_id}{SEPARATOR}{slot}": day_number(due)})


def due_runs(redis: Redis, today: date, limit: int) -> list[tuple[str, str]]:
    """(account id, slot) of runs whose next step is due by `today`, earliest first."""
    members = redis.zrangebyscore(keys.steps_due(), "-inf", day_number(today), start=0, num=limit)
    due = []
    for member in members:
        account_id, _, slot = keys.text(member).partition(SEPARATOR)  # type: ignore[arg-type]
        due.append((account_id, slot))
    return due


def forget_due(redis: Redis, account_id: str, slot: str) -> None:
    """Drop a schedule entry whose run is gone or ended (left by a crash between writes)."""
    redis.zrem(keys.steps_due(), f"{account_id}{SEPARATOR}{slot}")


def claim_step(redis: Redis, run_id: str, step: int) -> bool:
    """True for the one worker that may run this step now; a dead worker's claim expires."""
    return bool(redis.set(keys.step_claim(run_id, step), "1", nx=True, ex=STEP_CLAIM_SECONDS))


def release_step(redis: Redis, run_id: str, step: int) -> None:
    redis.delete(keys.step_claim(run_id, step))


def count_due(redis: Redis) -> int:
    return int(redis.zcard(keys.steps_due()))


COMPLETION_KEEP_SECONDS = 7 * 24 * 3600


def ask_to_complete(redis: Redis, account_id: str, run_id: str) -> None:
    """The rep completed a task while a step of its run was running: the run ends after it."""
    redis.set(keys.run_completed(account_id, run_id), "1", ex=COMPLETION_KEEP_SECONDS)


def completion_asked(redis: Redis, account_id: str, run_id: str) -> bool:
    return bool(redis.exists(keys.run_completed(account_id, run_id)))
