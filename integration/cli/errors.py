"""What an `integration` command prints when it fails in a way its user can fix.

Redis down, a config missing or wrong, a web app that does not answer: the user needs what is
wrong and what to do in a line or two, not a traceback. `integration --debug CMD` keeps it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click
import requests
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from integration.config.settings import Settings, masked
from integration.errors import IntegrationError, InvalidConfigError

CONFIG_ERRORS_SHOWN = 3
_CONFIG_PATH = "integration.config_path"  # in click's ctx.meta, shared by every command


class CliError(click.ClickException):
    """A failure the user can fix: `error: ...` on stderr, exit 1, no traceback."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


def remember_config_path(ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
    """--config's callback: keeps the path so a config error can name it."""
    ctx.meta[_CONFIG_PATH] = value
    return value


class ExplainingGroup(click.Group):
    """Turns the expected failures in `_EXPLAIN` into a CliError, unless --debug was given."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except _EXPECTED as exc:
            if ctx.params.get("debug"):
                raise
            explain = next(fn for kind, fn in _EXPLAIN.items() if isinstance(exc, kind))
            raise CliError(explain(exc, ctx)) from exc


def _reason(exc: BaseException) -> str:
    """The operating system's words ("Connection refused") from deep in a library's exception."""
    todo, seen = [exc], set()
    while todo:
        current = todo.pop(0)
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        seen.add(id(current))
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        todo += [e for e in (*linked, *current.args) if isinstance(e, BaseException)]
        todo = [e for e in todo if id(e) not in seen]
    return str(exc).rstrip(".")


def _redis_url() -> str:
    return masked(Settings().redis_url)


def _redis_down(exc: RedisError, _ctx: click.Context) -> str:
    return f"cannot reach Redis at {_redis_url()} ({_reason(exc)}); start Redis or set REDIS_URL"


def _redis_refused(exc: RedisError, _ctx: click.Context) -> str:
    url = _redis_url()
    return f"Redis at {url} refused a command ({exc}); check REDIS_URL, or rerun with --debug"


def _server_down(exc: requests.RequestException, ctx: click.Context) -> str:
    url = masked(exc.request.url or "?") if exc.request is not None else "the server"
    reason = "no answer in time" if isinstance(exc, requests.Timeout) else _reason(exc)
    if ctx.invoked_subcommand == "replay":
        return f"no web app answered at {url} ({reason}); start it or check --url"
    return f"cannot reach {url} ({reason})"


def _invalid_config(exc: InvalidConfigError, ctx: click.Context) -> str:
    path = ctx.meta.get(_CONFIG_PATH, Settings().config)
    if isinstance(exc.__cause__, OSError):  # the file itself: its one error names it
        return "\n".join(f"{e.message}\nhint: {e.hint}" for e in exc.errors)
    shown = exc.errors[:CONFIG_ERRORS_SHOWN]
    first = f", the first {len(shown)}" if len(exc.errors) > len(shown) else ""
    return "\n".join(
        [
            f"{path}: {len(exc.errors)} error(s){first}:",
            *(f"  {e.yaml_path or '(file)'}: {e.message}" for e in shown),
            f"run `integration validate {shlex.quote(str(path))}` to see each with a hint",
        ]
    )


_EXPLAIN: dict[type[Exception], Callable[[Any, click.Context], str]] = {
    InvalidConfigError: _invalid_config,
    RedisConnectionError: _redis_down,
    RedisTimeoutError: _redis_down,
    RedisError: _redis_refused,
    requests.ConnectionError: _server_down,
    requests.Timeout: _server_down,
    # StorageUnavailableError, ConfigError, CrmError: their messages say what to do.
    IntegrationError: lambda exc, _ctx: str(exc),
}
_EXPECTED = tuple(_EXPLAIN)
