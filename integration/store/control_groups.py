"""Control-group counts in Redis: per playbook, the runs started and how many are control runs,
shared by every worker so a control group never grows past its share.

The engine decides from the counts it was given (playbooks/control.py); `count_start` then counts
the run atomically and grants the control place only if the group, counted with every other
worker's runs, still stays within its share (the same rule, in Lua). A run refused its place
here is treated instead; a control run later switched to treated gives its place back
(`give_back`). One hash, one key: a single slot on a Redis Cluster.
"""

from __future__ import annotations

from redis import Redis

from integration.store import keys

# Share in hundredths of a percent (as playbooks/control.py::HASH_BUCKETS).
_BASIS = 10_000
# KEYS[1] the hash; ARGV: playbook, 1 if the run asks to be control, the share in basis points.
_COUNT_START = f"""
local started = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':started', 1)
local control = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':control') or '0')
if ARGV[2] == '1' and (control + 1) * {_BASIS} <= tonumber(ARGV[3]) * started then
  control = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':control', 1)
  return {{started, control, 1}}
end
return {{started, control, 0}}
"""


def counts(redis: Redis) -> dict[str, tuple[int, int]]:
    """(runs started, control runs) by playbook."""
    raw = redis.hgetall(keys.control_groups())
    found: dict[str, list[int]] = {}
    for field, value in raw.items():
        playbook, _, what = keys.text(field).rpartition(":")
        found.setdefault(playbook, [0, 0])[0 if what == "started" else 1] = int(value)
    return {playbook: (started, control) for playbook, (started, control) in found.items()}


def count_start(
    redis: Redis, playbook: str, wants_control: bool, share_basis_points: int
) -> tuple[int, int, bool]:
    """Count a run the playbook starts; (started, control) after it and whether the run keeps
    its control place."""
    started, control, granted = redis.eval(
        _COUNT_START,
        1,
        keys.control_groups(),
        playbook,
        "1" if wants_control else "0",
        share_basis_points,
    )
    return int(started), int(control), bool(granted)


def uncount_start(redis: Redis, playbook: str, control: bool) -> None:
    """Undo count_start for a run another worker started first (it counted its own)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(keys.control_groups(), f"{playbook}:started", -1)
    if control:
        pipe.hincrby(keys.control_groups(), f"{playbook}:control", -1)
    pipe.execute()


def give_back(redis: Redis, playbook: str) -> None:
    """A control run switched to treated (the admin lowered the share or set `control:
    never`): its place goes back to the group; it stays counted as started."""
    redis.hincrby(keys.control_groups(), f"{playbook}:control", -1)
