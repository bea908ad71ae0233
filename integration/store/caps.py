"""Task caps: at most N new tasks per assignee per day and M per account per week.

A task over a cap is held, never dropped: it waits in a sorted set, highest risk first, and
is released on a later working day when the caps allow it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from redis import Redis

from integration.store import keys

DAY_SECONDS = 24 * 3600
# Count one more on a counter unless it is at its cap (0: no cap). One key a call, so a Redis
# Cluster never needs two slots at once.
_TAKE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local cap = tonumber(ARGV[1])
if cap > 0 and n >= cap then return 0 end
redis.call('INCR', KEYS[1]); redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def try_take(
    redis: Redis,
    assignee: str | None,
    account_id: str,
    day: date,
    per_assignee_per_day: int | None,
    per_account_per_week: int | None,
) -> bool:
    """Count a new task against both caps, unless either is full (then neither counts it)."""
    year, week, _ = day.isocalendar()
    by_assignee = keys.task_cap("assignee", assignee or "-", day.isoformat())
    by_account = keys.task_cap("account", account_id, f"{year}-W{week:02d}")
    if not redis.eval(_TAKE, 1, by_assignee, per_assignee_per_day or 0, 2 * DAY_SECONDS):
        return False
    if redis.eval(_TAKE, 1, by_account, per_account_per_week or 0, 8 * DAY_SECONDS):
        return True
    redis.decr(by_assignee)  # the account's week is full: give the assignee's place back
    return False


def give_back(redis: Redis, assignee: str | None, account_id: str, day: date) -> None:
    """Undo try_take for a task that did not go out after all."""
    year, week, _ = day.isocalendar()
    redis.decr(keys.task_cap("assignee", assignee or "-", day.isoformat()))
    redis.decr(keys.task_cap("account", account_id, f"{year}-W{week:02d}"))


def is_held(redis: Redis, member: str) -> bool:
    return bool(redis.exists(keys.held_task(member)))


def member(idempotency_key: str) -> str:
    """A held task's name in tasks_held (its idempotency key, hashed: it may hold an email)."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def hold(
    redis: Redis, idempotency_key: str, task: dict[str, Any], risk_score: int, day: date
) -> None:
    """Keep a task for a later day; holding it again changes nothing."""
    name = member(idempotency_key)
    # Both keys share the {held} tag, so this stays one transaction on a Redis Cluster too
    # (where a bare pipeline() is not one): no held task without its place in the order.
    pipe = redis.pipeline(transaction=True)
    pipe.set(keys.held_task(name), json.dumps({"held_on": day.isoformat(), "task": task}))
    # Highest risk first; among equals, the earliest held (day number as a fraction).
    pipe.zadd(keys.tasks_held(), {name: -risk_score + day.toordinal() / 1e7}, nx=True)
    pipe.execute()


def held(redis: Redis, limit: int, start: int = 0) -> list[tuple[str, float, date, dict[str, Any]]]:
    """Held tasks in release order, `limit` from `start`: (member, score, day held, task)."""
    entries = redis.zrange(keys.tasks_held(), start, start + limit - 1, withscores=True)
    found = []
    for member_raw, score in entries:  # type: ignore[str-unpack]
        member = keys.text(member_raw)
        raw = redis.get(keys.held_task(member))
        if raw is None:
            redis.zrem(keys.tasks_held(), member)
            continue
        stored = json.loads(raw)
        found.append((member, float(score), date.fromisoformat(stored["held_on"]), stored["task"]))
    return found


def release(redis: Redis, member: str) -> bool:
    """True for the one caller that takes the held task out (the task is then theirs to run)."""
    return bool(redis.zrem(keys.tasks_held(), member))


def forget(redis: Redis, member: str) -> None:
    redis.delete(keys.held_task(member))


def put_back(redis: Redis, member: str, score: float) -> None:
    redis.zadd(keys.tasks_held(), {member: score})


def held_count(redis: Redis) -> int:
    return int(redis.zcard(keys.tasks_held()))
