"""The read-only view `integration plan` works on: it reads Redis and never writes to it."""

from __future__ import annotations

from redis import Redis

from integration.store.read_only import held_back, read_only


def test_reads_pass_and_writes_never_reach_redis(redis: Redis) -> None:
    redis.set("ci:test:cached", "old")
    redis.hset("ci:test:hash", "a", "1")
    before = {key: redis.dump(key) for key in redis.scan_iter()}
    view = read_only(redis)

    assert view.get("ci:test:cached") == b"old"
    assert view.hgetall("ci:test:hash") == {b"a": b"1"}
    # Plain string writes land in the view's scratch layer: the view sees them, Redis not.
    assert view.set("ci:test:cached", "new", ex=60)
    assert view.set("ci:test:claim", "mine", nx=True)
    assert view.set("ci:test:claim", "theirs", nx=True) is None
    assert view.incr("ci:test:count") == 1
    assert view.mget(["ci:test:cached", "ci:test:claim"]) == [b"new", b"mine"]
    assert view.delete("ci:test:cached") == 1
    assert view.get("ci:test:cached") is None
    assert view.exists("ci:test:claim") == 1
    # Anything else that writes is not sent at all.
    assert view.hset("ci:test:hash", "b", "2") is None
    assert view.zadd("ci:test:zset", {"x": 1}) is None
    assert view.eval("return redis.call('SET', KEYS[1], 'x')", 1, "ci:test:lua") is None
    pipe = view.pipeline(transaction=True)
    pipe.set("ci:test:piped", "1").hgetall("ci:test:hash").sadd("ci:test:set", "m")
    assert pipe.execute() == [True, {b"a": b"1"}, None]

    assert {key: redis.dump(key) for key in redis.scan_iter()} == before
    assert held_back(view) == {"HSET": 1, "ZADD": 1, "EVAL": 1, "SADD": 1}
    assert held_back(redis) == {}
