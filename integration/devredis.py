"""Find a Redis for the demo and the tests: the one at REDIS_URL, else a private one we start.

Production never uses this: there Redis is a managed service with AOF persistence.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from redis import Redis
from redis.exceptions import RedisError

START_TIMEOUT_SECONDS = 10
HOW_TO_GET_REDIS = (
    "No Redis answered at {url} and no redis-server is on the PATH. Either start one "
    "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or point REDIS_URL "
    "at yours, e.g. REDIS_URL=redis://localhost:6379/0."
)


@dataclass
class DevRedis:
    url: str
    process: subprocess.Popen[bytes] | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT_SECONDS)
        if self._workdir is not None:
            self._workdir.cleanup()


class RedisNotFoundError(RuntimeError):
    """Neither a running Redis nor a redis-server binary could be found."""


def answers(url: str) -> bool:
    try:
        with Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except RedisError:
        return False


def find_or_start(url: str) -> DevRedis:
    if answers(url):
        return DevRedis(url)
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisNotFoundError(HOW_TO_GET_REDIS.format(url=url))
    port = free_port()
    workdir = tempfile.TemporaryDirectory(prefix="cs-redis-")
    process = subprocess.Popen(  # noqa: S603 - our own argument list, no shell
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir.name,
        ],
        stdout=subprocess.DEVNULL,
    )
    private = DevRedis(f"redis://127.0.0.1:{port}/0", process, workdir)
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


def empty_database_url(url: str, databases: range = range(1, 16)) -> str:
    """The URL of the first empty logical database on that server, so we never touch data."""
    for number in databases:
        candidate = with_database(url, number)
        client = Redis.from_url(candidate)
        try:
            if client.dbsize() == 0:
                return candidate
        finally:
            client.close()
    msg = f"every Redis database 1-15 at {url} holds data; point REDIS_URL at an empty server"
    raise RedisNotFoundError(msg)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
