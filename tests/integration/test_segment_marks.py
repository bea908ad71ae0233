"""Segment messageIds count once across accounts (claims on {ingest}), also after the upgrade and
after a consumer died between folding and acknowledging (4a5a4a7's per-account marks did not)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis

from integration.config.settings import Settings
from integration.jobs.context import read_config
from integration.store import renames
from tests.conftest import fold
from webhooks.app import create_app

SEGMENT = Path(__file__).resolve().parents[1] / "fixtures" / "segment"
SECRET = json.loads((SEGMENT / "signature_vectors.json").read_text())["shared_secret"]


def sample(name: str, **changes: Any) -> dict[str, Any]:
    message = json.loads((SEGMENT / name).read_text())
    fresh = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return message | {"timestamp": fresh} | changes


@pytest.fixture
def client(config_file: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SEGMENT_SECRET", SECRET)
    config = yaml.safe_load(config_file.read_text())
    config["webhooks"]["segment"] = {"shared_secret_env": "SEGMENT_SECRET"}
    config_file.write_text(yaml.safe_dump(config))
    settings = Settings(config=config_file, redis_url=redis_url)
    app = create_app(settings, read_config(config_file))
    yield app.test_client()
    app.extensions["integration.redis"].close()


def post(client: Any, messages: list[dict[str, Any]]) -> Any:
    body = json.dumps(messages)
    _, end = json.JSONDecoder().raw_decode(body, 1)
    signature = hmac_sha1(body[1:end])
    headers = {"Content-Type": "application/json", "X-Signature": signature}
    return client.post("/webhooks/segment", data=body, headers=headers)


def hmac_sha1(text: str) -> str:
    import hmac  # noqa: PLC0415

    return hmac.new(SECRET.encode(), text.encode(), hashlib.sha1).hexdigest()


def folded(client: Any, redis: Redis) -> None:
    fold(redis, client.application.extensions["integration.config"])


def events(redis: Redis, *accounts: str) -> int:
    return sum(sum(redis.get(f"ci:{{acct:{a}}}:daily:events") or b"") for a in accounts)


def track(user: str, message_id: str) -> dict[str, Any]:
    message = sample("track.json", userId=user, messageId=message_id)
    message.get("context", {}).pop("groupId", None)
    return message


def test_a_resent_segment_message_counts_once_after_its_user_changed_account(
    client: Any, redis: Redis
) -> None:
    user = "usr_moving"
    post(client, [sample("group.json", userId=user, groupId="acme", messageId="g-1")])
    folded(client, redis)
    post(client, [track(user, "m-1")])
    folded(client, redis)
    assert events(redis, "acme") >= 1
    post(client, [sample("group.json", userId=user, groupId="globex", messageId="g-2")])
    folded(client, redis)
    before = events(redis, "acme", "globex")
    # Segment re-sends m-1, batched with a new message m-2: only m-2 is new.
    assert post(client, [track(user, "m-1"), track(user, "m-2")]).status_code == 202
    folded(client, redis)
    assert events(redis, "acme", "globex") == before + 1


def test_a_message_stored_by_the_previous_release_counts_once_after_the_upgrade(
    client: Any, redis: Redis
) -> None:
    message = sample("track__context_group_id.json", messageId="m-old")
    digest = hashlib.blake2b(b"m-old", digest_size=10).hexdigest()
    redis.set(f"ci:msg:segment:{digest}", "1", ex=26 * 3600)  # what the old fold_usage.lua set
    renames.adopt_untagged_keys(redis)  # the upgrade's move of the untagged names
    assert renames.adopt_message_marks(redis) == 1  # and `integration migrate`'s of the marks
    assert 0 < redis.ttl(f"ci:{{ingest}}:msg:segment:{digest}") <= 26 * 3600
    assert post(client, [message]).status_code == 202  # a re-send made up as a new delivery
    folded(client, redis)
    assert events(redis, "northwind") == 0


class KilledError(Exception):
    """The consumer process dies here."""


def test_a_track_refolded_after_its_consumer_died_counts_once(
    client: Any, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from integration.jobs.fold import EvaluationQueue  # noqa: PLC0415
    from integration.jobs.fold import fold as fold_entries  # noqa: PLC0415
    from integration.store import ingest_stream  # noqa: PLC0415

    user = "usr_moving"
    post(client, [sample("group.json", userId=user, groupId="acme", messageId="g-1")])
    folded(client, redis)
    before = events(redis, "acme", "globex")
    post(client, [track(user, "m-1")])  # for acme, as linked when it was sent
    post(client, [sample("group.json", userId=user, groupId="globex", messageId="g-2")])
    config = client.application.extensions["integration.config"]
    ingest_stream.ensure_group(redis)
    held = ingest_stream.read(redis, "dying", 10, None)
    queue = EvaluationQueue(redis, 0)

    def killed(*_: Any) -> int:
        raise KilledError

    monkeypatch.setattr(ingest_stream, "acknowledge", killed)
    with pytest.raises(KilledError):
        fold_entries(redis, held, "dying", config, queue)
    monkeypatch.undo()
    once = events(redis, "acme", "globex")
    claimed = ingest_stream.claim(redis, "alive", 10, idle_ms=0)
    fold_entries(redis, claimed, "alive", config, queue)
    assert redis.xlen(ingest_stream.keys.ingest_stream()) == 0
    assert once > before
    assert events(redis, "acme", "globex") == once
