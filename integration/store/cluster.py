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
from redis.cluster import ClusterPipeline, RedisCluster

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


class _OneSlotMgetPipeline(ClusterPipeline):
    """redis-py blocks MGET in every cluster pipeline, since it cannot split one across slots.
    One account's keys share a slot, so their MGET is one plain command for one node: it is
    queued like any other (a cross-slot one still fails, when the pipeline runs)."""

    def mget(self, keys: Sequence[str], *args: str) -> ClusterPipeline:  # type: ignore[override]  # redis-py types it as the client's reply
        # redis-py leaves the pipeline's execute_command unannotated; it returns the pipeline.
        return self.execute_command("MGET", *keys, *args)  # type: ignore[no-untyped-call,no-any-return]


class StateCluster(RedisCluster):
    """The state client on a Redis Cluster: its pipelines take one account's MGET, which the
    evaluation's reads (rollups.load_histories) send once per account."""

    def pipeline(self, transaction: bool | None = None, shard_hint: None = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        pipe.__class__ = _OneSlotMgetPipeline  # the same object, with MGET allowed
        return pipe  # type: ignore[no-any-return]
