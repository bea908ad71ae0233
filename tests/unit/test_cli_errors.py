"""A failure the user can fix is one or two lines on stderr and exit 1; a traceback only on --debug.

No Redis here: the Redis ones point at a port nothing listens on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from integration.cli.devredis import free_port
from integration.cli.main import main
from integration.config.settings import masked

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MISSING_FILE_HINT = (
    "hint: pass --config PATH or set INTEGRATION_CONFIG; "
    "integration/cli/examples/config.example.yaml is a start"
)


@pytest.fixture
def dead_redis() -> str:
    return f"redis://:hunter2@127.0.0.1:{free_port()}/0"


def run(args: list[str], redis_url: str = "redis://127.0.0.1:1/0") -> Result:
    env = {"REDIS_URL": redis_url, "INTEGRATION_REDIS_URL": None, "INTEGRATION_CONFIG": None}
    return CliRunner().invoke(main, args, env=env)


def redis_down_line(url: str) -> str:
    return (
        f"error: cannot reach Redis at {masked(url)} (Connection refused); "
        "start Redis or set REDIS_URL\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["report"],
        ["worker", "--burst"],
        ["unmatched"],
        ["failed"],
        ["retry", "--all"],
        ["evaluate"],
        ["assessment", "--account", "acme"],
        ["provision"],
        ["import", "usage", "{config}"],
    ],
)
def test_redis_down_is_one_line_naming_the_url_without_its_password(
    args: list[str], config_file: Path, dead_redis: str
) -> None:
    args = [arg.format(config=config_file) for arg in args]
    result = run([*args, "--config", str(config_file)], dead_redis)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", redis_down_line(dead_redis))
    assert "hunter2" not in result.output


def test_migrate_with_redis_down_is_one_line(dead_redis: str) -> None:
    result = run(["migrate"], dead_redis)
    assert (result.exit_code, result.stderr) == (1, redis_down_line(dead_redis))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:s3cret@cache:6380/2", "rediss://app:***@cache:6380/2"),
        (
            "redis://cache:6379/0?password=s3cret&ssl=true",
            "redis://cache:6379/0?password=***&ssl=true",
        ),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_a_password_in_a_url_is_never_shown(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_a_missing_config_names_the_file_and_how_to_point_at_one(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = run(["report", "--config", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: cannot read config file '{path}': No such file or directory",
        MISSING_FILE_HINT,
    ]


def test_a_config_that_is_a_folder_is_unreadable(tmp_path: Path) -> None:
    result = run(["unmatched", "--config", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: cannot read config file '{tmp_path}': Is a directory",
        MISSING_FILE_HINT,
    ]


def test_an_invalid_config_shows_the_count_the_first_errors_and_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("USAGE_WEBHOOK_SECRET", "JOB_CHANGES_WEBHOOK_SECRET"):
        monkeypatch.setenv(name, SECRET)
    path = tmp_path / "config.yaml"
    path.write_text(
        "crm: {kind: pipedrive}\n"
        "risk: {usage_drop: {drop_pct: fifty, window_days: x}}\n"
        "fields: {risk_level: 5}\n"
    )
    result = run(["report", "--config", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {path}: 4 error(s), the first 3:",
        "  crm.kind: input should be 'sandbox', 'hubspot' or 'salesforce', got 'pipedrive'",
        "  fields.risk_level: input should be a valid string, got 5",
        "  risk.usage_drop.drop_pct: input should be a valid number, unable to parse string as "
        "a number, got 'fifty'",
        f"run `integration validate {path}` to see each with a hint",
    ]


def test_one_config_error_in_a_path_with_a_space_is_quoted_for_the_shell(tmp_path: Path) -> None:
    path = tmp_path / "my config.yaml"
    path.write_text("crm: [sandbox\n")
    result = run(["failed", "--config", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {path}: 1 error(s):",
        "  (file): not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'",
        f"run `integration validate '{path}'` to see each with a hint",
    ]


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    (folder / "usage").mkdir(parents=True)
    event = {"account_id": "acme", "user_id": "u1", "event": "login"}
    (folder / "usage" / "acme.json").write_text(
        json.dumps([event | {"timestamp": "2026-01-05T12:00:00+00:00"}])
    )
    return folder


def test_replay_to_a_dead_server_is_one_line_naming_the_url(
    samples: Path, config_file: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(["replay", str(samples), "--url", url, "--config", str(config_file)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: no web app answered at {url}/webhooks/usage (Connection refused); "
        "start it or check --url\n"
    )


def test_replay_to_something_that_is_not_a_url_says_what_a_url_looks_like(
    samples: Path, config_file: Path
) -> None:
    result = run(["replay", str(samples), "--url", "localhost", "--config", str(config_file)])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --url takes the web app's address, as http://localhost:8000; got 'localhost'\n"
    )


def integration(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """The installed command in its own process, as a user runs it (no CliRunner catching)."""
    env = {k: v for k, v in os.environ.items() if k != "INTEGRATION_REDIS_URL"}
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "integration", *args],
        env=env | {"REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_user_sees_no_traceback_without_debug(dead_redis: str) -> None:
    finished = integration("migrate", redis_url=dead_redis)
    assert (finished.returncode, finished.stderr) == (1, redis_down_line(dead_redis))


def test_debug_shows_the_traceback(dead_redis: str) -> None:
    finished = integration("--debug", "migrate", redis_url=dead_redis)
    assert finished.returncode == 1
    assert finished.stderr.startswith("Traceback (most recent call last):")
    assert finished.stderr.splitlines()[-1].startswith("redis.exceptions.ConnectionError: ")


def test_version_is_the_installed_package_s() -> None:
    result = run(["--version"])
    assert (result.exit_code, result.output) == (0, f"integration {version('cs-playbooks')}\n")
