"""Playbook runs in Redis: each account's runs, and the steps due, durably.

A run is JSON (playbooks/runs.py says what it holds). Saving compares what is stored first, so
two workers moving the same run (a duplicate job, the evaluation clearing it while a step runs)
never undo each other: the one whose view is stale is told so and does nothing.
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
# absent and ARGV[3] == '' , or active with next_step ARGV[3] (a started run, or the one being
# moved). Then schedule it (ARGV[4] a day number) or unschedule it (ARGV[4] == '').
_SAVE = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == '' then
  if stored then
    local old = cjson.decode(stored)
    if old['status'] == 'active' then return 0 end
  end
else
  if not stored then return 0 end
  local old = cjson.decode(stored)
  if old['status'] ~= 'active' or tostring(old['next_step']) ~= ARGV[3] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], ARGV[5])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
end
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
    expected_step: int | None,
    due: date | None,
) -> bool:
    """Store the run if nobody moved it since it was read (`expected_step` None: a new run,
    refused while an active one holds the slot); schedule its next step for `due`."""
    return bool(
        redis.eval(
            _SAVE,
            2,
            keys.playbook_runs(account_id),
            keys.steps_due(),
            slot,
            json.dumps(run),
            "" if expected_step is None else str(expected_step),
            "" if due is None else str(day_number(due)),
            f"{account_id}{SEPARATOR}{slot}",
        )
    )


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
