"""A view of Redis that reads and never writes: what a dry run (`integration plan`) works on.

Reads go to Redis. Plain string writes (SET, DEL, INCR) land in a scratch layer that only
this view sees, so code that caches a lookup (a contact, an owner) or counts against a cap
behaves for the rest of the dry run as it would in the real run, while Redis itself is never
written. Every other command that is not a known read (HSET, ZADD, EVAL, ...) is not sent at
all: it is counted in `held_back` and answered with None. An allowlist, not a denylist, so a
command added later is held back until someone decides it is a read.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from redis import Redis

# Commands sent to Redis as they are: they read and change nothing.
READS = frozenset(
    {
        "PING", "ECHO", "INFO", "TIME", "DBSIZE", "TYPE", "TTL", "PTTL", "SCAN", "KEYS",
        "DUMP", "STRLEN", "GETRANGE", "GETBIT", "BITCOUNT", "BITFIELD_RO",
        "HGET", "HMGET", "HGETALL", "HVALS", "HKEYS", "HEXISTS", "HLEN", "HSCAN",
        "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "SSCAN",
        "ZSCORE", "ZMSCORE", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE",
        "ZCARD", "ZCOUNT", "ZRANK", "ZREVRANK", "ZSCAN",
        "LRANGE", "LLEN", "LINDEX", "XLEN", "XRANGE", "XREVRANGE", "XINFO", "XPENDING",
        "PFCOUNT",
    }
)  # fmt: skip
R = TypeVar("R", bound=Redis)
_GONE = object()  # a key the scratch layer deleted


class _ReadOnly:
    """Mixed into a copy of the caller's client class (a Redis, or a Redis Cluster client):
    every command goes through `execute_command`, so this is the one place to decide."""

    _scratch: dict[str, Any]
    held_back: Counter[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:  # noqa: ANN401 - Redis replies
        name = str(args[0]).upper()
        scratch = _SCRATCH.get(name)
        if scratch is not None:
            return scratch(self, [_name(key) for key in args[1:2]], args[2:], options)
        if name in READS:
            return super().execute_command(*args, **options)  # type: ignore[misc]
        self.held_back[name] += 1
        return None

    def pipeline(self, transaction: bool | None = None, shard_hint: None = None) -> _Pipeline:
        return _Pipeline(self)

    def _read(self, key: str) -> Any:  # noqa: ANN401 - a Redis reply
        if key in self._scratch:
            value = self._scratch[key]
            return None if value is _GONE else value
        return super().execute_command("GET", key)  # type: ignore[misc]


class _Pipeline:
    """Queues calls and makes them one by one on the view at execute(): nothing here needs
    them atomic, and each then goes through the view's rules."""

    def __init__(self, view: _ReadOnly) -> None:
        self._view = view
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., _Pipeline]:
        def queue(*args: Any, **kwargs: Any) -> _Pipeline:  # noqa: ANN401
            self._calls.append((name, args, kwargs))
            return self

        return queue

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        calls, self._calls = self._calls, []
        return [getattr(self._view, name)(*args, **kwargs) for name, args, kwargs in calls]

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *_: object) -> None:
        self._calls = []


def read_only(redis: R) -> R:
    """A client on the same connections that reads Redis and never writes to it."""
    view = copy.copy(redis)
    view.__class__ = type(f"ReadOnly{type(redis).__name__}", (_ReadOnly, type(redis)), {})
    view._scratch = {}  # type: ignore[attr-defined]
    view.held_back = Counter()  # type: ignore[attr-defined]
    return view


def held_back(redis: Redis) -> Counter[str]:
    """The writes a read-only view did not send, by command (empty for any other client)."""
    return Counter(getattr(redis, "held_back", {}))


def _name(key: object) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


def _encoded(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _get(view: _ReadOnly, keys: list[str], rest: tuple[Any, ...], options: dict[str, Any]) -> Any:  # noqa: ANN401
    return view._read(keys[0])


def _mget(view: _ReadOnly, keys: list[str], rest: tuple[Any, ...], options: dict[str, Any]) -> Any:  # noqa: ANN401
    return [view._read(_name(key)) for key in [*keys, *rest]]


def _exists(
    view: _ReadOnly, keys: list[str], rest: tuple[Any, ...], options: dict[str, Any]
) -> int:
    return sum(view._read(_name(key)) is not None for key in [*keys, *rest])


def _set(view: _ReadOnly, keys: list[str], rest: tuple[Any, ...], options: dict[str, Any]) -> Any:  # noqa: ANN401
    flags = {str(item).upper() for item in rest[1:] if isinstance(item, str | bytes)}
    exists = view._read(keys[0]) is not None
    if ("NX" in flags and exists) or ("XX" in flags and not exists):
        return None
    view._scratch[keys[0]] = _encoded(rest[0])
    return True


def _delete(
    view: _ReadOnly, keys: list[str], rest: tuple[Any, ...], options: dict[str, Any]
) -> int:
    names = [*keys, *(_name(key) for key in rest)]
    gone = sum(view._read(key) is not None for key in names)
    for key in names:
        view._scratch[key] = _GONE
    return gone


def _incr_by(step: int) -> Callable[[_ReadOnly, list[str], tuple[Any, ...], dict[str, Any]], int]:
    def incr(view: _ReadOnly, keys: list[str], rest: tuple[Any, ...], _: dict[str, Any]) -> int:
        amount = int(rest[0]) if rest else 1
        value = int(view._read(keys[0]) or 0) + step * amount
        view._scratch[keys[0]] = str(value).encode()
        return value

    return incr


_SCRATCH: dict[str, Callable[[_ReadOnly, list[str], tuple[Any, ...], dict[str, Any]], Any]] = {
    "GET": _get,
    "MGET": _mget,
    "EXISTS": _exists,
    "SET": _set,
    "DEL": _delete,
    "UNLINK": _delete,
    "INCR": _incr_by(1),
    "INCRBY": _incr_by(1),
    "DECR": _incr_by(-1),
    "DECRBY": _incr_by(-1),
}
