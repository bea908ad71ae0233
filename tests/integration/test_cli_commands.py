"""CLI commands against a real Redis: an unknown job id is an error, nothing to do is success."""

from __future__ import annotations

import math

from click.testing import CliRunner, Result
from redis import Redis
from rq import Queue

from integration.cli.main import main
from integration.config.settings import Settings
from integration.jobs.queues import QUEUE_NAMES
from tests.conftest import drain


def run(settings: Settings, *args: str) -> Result:
    env = {"REDIS_URL": settings.redis_url, "INTEGRATION_REDIS_URL": None}
    return CliRunner().invoke(main, [*args, "--config", str(settings.config)], env=env)


def test_retrying_an_unknown_job_id_names_it_and_fails(settings: Settings, redis: Redis) -> None:
    result = run(settings, "retry", "nosuchjob")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: not in the failed registry: nosuchjob (`integration failed` lists the jobs there)\n"
    )


def test_known_ids_are_requeued_even_when_another_is_unknown(
    settings: Settings, redis: Redis
) -> None:
    queue = Queue(QUEUE_NAMES[0], connection=redis)
    job = queue.enqueue(math.sqrt, -1)  # fails: math domain error
    drain(redis)
    assert queue.failed_job_registry.get_job_ids() == [job.id]

    result = run(settings, "retry", job.id, "nosuchjob", "nosuchjob")
    assert result.exit_code == 1
    assert result.stdout == "re-queued 1 job(s)\n"
    assert result.stderr == (
        "error: not in the failed registry: nosuchjob (`integration failed` lists the jobs there)\n"
    )
    assert queue.job_ids == [job.id]


def test_provision_with_nothing_to_provision_succeeds(settings: Settings, redis: Redis) -> None:
    result = run(settings, "provision")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "nothing to provision for sandbox: its fields are managed in the CRM's own setup\n"
    )


def test_listing_nothing_is_success(settings: Settings, redis: Redis) -> None:
    assert [
        (r.exit_code, r.stdout) for r in (run(settings, "failed"), run(settings, "unmatched"))
    ] == [
        (0, "no failed jobs\n"),
        (0, "no unmatched signals\n"),
    ]


def test_an_account_never_assessed_says_how_to_get_one(settings: Settings, redis: Redis) -> None:
    result = run(settings, "assessment", "--account", "acme")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: no assessment for account 'acme' yet: the daily evaluation stores one "
        "(`integration evaluate --account acme` shows one now)\n"
    )
