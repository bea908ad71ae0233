"""What lets the state layer run on one Redis or on a Redis Cluster with the same code.

Per-account state may live on a Redis Cluster (INTEGRATION_STATE_REDIS_CLUSTER). There, a
multi-key command or script must keep to one slot: one account's keys (`{acct:ID}`), or the
global coordination keys under one tag (`{ci}`, keys.py). Reading many accounts' keys at once
(MGET) crosses slots, so it goes through `get_many`, which splits by slot on a cluster and stays
one MGET on a single Redis (same reply, same round trip as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from redis import Redis
from redis.cluster import RedisCluster

# The client of per-account state: a `Redis`, or a `RedisCluster` when the state is on a
# cluster. Typed as `Redis` while the ingest path (webhooks/usage.py, segment.py, jobs/fold*.py,
# cli/main.py, cli/demo.py) still hands the state client to RQ and to functions typed `Redis`;
# once those take the queue client, this becomes `Redis | RedisCluster` and mypy points at any
# call that would send a cluster client where one cannot go.
StateRedis: TypeAlias = Redis


def is_cluster(redis: StateRedis) -> bool:
    return isinstance(redis, RedisCluster)


def get_many(redis: StateRedis, names: Sequence[str]) -> list[bytes | str | None]:
    """GET of many keys, in order, in one round trip per node: MGET on one Redis;
    `mget_nonatomic` (grouped by slot) on a cluster, where one MGET cannot span accounts.
    Nothing reading these ever needed them read atomically together."""
    if not names:
        return []
    if isinstance(redis, RedisCluster):
        return list(redis.mget_nonatomic(list(names)))
    return list(redis.mget(names))
