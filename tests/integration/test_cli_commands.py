"""CLI commands against a real Redis: what they say when there is nothing to show."""

from __future__ import annotations

from click.testing import CliRunner, Result
from redis import Redis

from integration.cli import main
from integration.settings import Settings


def run(settings: Settings, *args: str) -> Result:
    env = {"REDIS_URL": settings.redis_url, "INTEGRATION_REDIS_URL": None}
    return CliRunner().invoke(main, [*args, "--config", str(settings.config)], env=env)


def test_an_account_never_assessed_says_how_to_get_one(settings: Settings, redis: Redis) -> None:
    result = run(settings, "assessment", "--account", "acme")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: no assessment for account 'acme' yet: the daily evaluation stores one "
        "(`integration evaluate --account acme` shows one now)\n"
    )
