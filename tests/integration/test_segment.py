"""POST /webhooks/segment: Segment's own message shapes, its signature, and account attribution."""

from __future__ import annotations

import hashlib
import hmac
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
from integration.jobs.fold import EvaluationQueue
from integration.jobs.fold import fold as fold_entries
from integration.store import ingest_stream, keys, waiting
from tests.conftest import fold, nothing_stored
from webhooks.app import create_app

SEGMENT = Path(__file__).resolve().parents[1] / "fixtures" / "segment"
VECTORS = json.loads((SEGMENT / "signature_vectors.json").read_text())
SECRET = VECTORS["shared_secret"]  # made up by us, as are the vectors signed with it


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


def folded(client: Any, redis: Redis) -> None:
    """What the `integration fold` consumer does moments later, with the web app's config."""
    fold(redis, client.application.extensions["integration.config"])


def post(client: Any, body: str, signature: str | None = None) -> Any:
    first = body
    if body.lstrip().startswith("["):
        _, end = json.JSONDecoder().raw_decode(body, 1)
        first = body[1:end]
    signature = signature or hmac.new(SECRET.encode(), first.encode(), hashlib.sha1).hexdigest()
    return client.post(
        "/webhooks/segment",
        data=body,
        headers={"Content-Type": "application/json", "X-Signature": signature},
    )


@pytest.mark.parametrize("case", VECTORS["cases"], ids=["single", "actions-batch"])
def test_segments_signature_vectors_verify(client: Any, case: dict[str, str]) -> None:
    body = (SEGMENT / case["body_file"]).read_text()
    answer = post(client, body, case["x_signature"])
    assert answer.status_code == 202, answer.json


def test_a_tampered_or_unsigned_delivery_is_refused(client: Any, redis: Redis) -> None:
    body = (SEGMENT / "track__signed.json").read_text()
    signature = VECTORS["cases"][0]["x_signature"]
    tampered = post(client, body.replace("usr_7Qm2Kd9x", "usr_7Qm2Kd9y"), signature)
    unsigned = client.post(
        "/webhooks/segment", data=body, headers={"Content-Type": "application/json"}
    )
    assert (tampered.status_code, unsigned.status_code) == (401, 401)
    assert unsigned.json["message"] == "missing header X-Signature (a shared secret is configured)"
    assert nothing_stored(redis)


def test_a_track_with_context_group_id_is_counted_for_that_account(
    client: Any, redis: Redis
) -> None:
    message = sample("track__context_group_id.json")
    answer = post(client, json.dumps(message))
    assert answer.json == {"status": "accepted", "events": 1, "skipped": {}}
    folded(client, redis)
    assert waiting.waiting_accounts(redis) == {"northwind"}


def test_a_group_call_ties_the_users_later_tracks_to_the_account(client: Any, redis: Redis) -> None:
    group = sample("group.json")
    track = sample("track.json", userId=group["userId"])
    track.get("context", {}).pop("groupId", None)
    post(client, json.dumps([group]))
    answer = post(client, json.dumps(track))
    assert answer.json["events"] == 1
    folded(client, redis)
    assert redis.smembers("ci:{ci}:known_accounts") == {group["groupId"].encode()}
    assert redis.hkeys("ci:unmatched") == []  # the track was tied to the group's account


def test_a_batch_envelope_with_an_unpadded_date_is_taken_not_rejected(
    client: Any, redis: Redis
) -> None:
    envelope = json.loads((SEGMENT / "batch__tracking_api.json").read_text())
    today = datetime.now(UTC)
    loose = f"{today.year}-{today.month}-{today.day}T00:00:01.276Z"  # as Segment's docs show
    for item in envelope["batch"]:
        item["timestamp"] = loose
        item.setdefault("context", {})["groupId"] = "acme"
    answer = post(client, json.dumps(envelope))
    assert answer.json["events"] == len(envelope["batch"])


def test_tracks_without_any_account_are_listed_not_silently_dropped(
    client: Any, redis: Redis
) -> None:
    track = sample("track.json", userId="stranger")
    track.get("context", {}).pop("groupId", None)
    answer = post(client, json.dumps(track))
    assert answer.json["events"] == 1  # accepted: whether it has an account is the fold's call
    folded(client, redis)
    assert b"segment:events without an account" in redis.hkeys("ci:unmatched")


def test_deletions_are_answered_2xx_and_ignored(client: Any, redis: Redis) -> None:
    delete = sample("delete.json")
    answer = post(client, json.dumps(delete))
    assert answer.json == {"status": "accepted", "events": 0, "skipped": {"type delete": 1}}
    assert nothing_stored(redis)


def test_a_retried_delivery_counts_once(client: Any, redis: Redis) -> None:
    body = json.dumps(sample("track__context_group_id.json"))
    assert post(client, body).status_code == 202
    again = post(client, body)
    assert (again.status_code, again.json["status"]) == (200, "duplicate")
    folded(client, redis)
    events = redis.get("ci:{acct:northwind}:daily:events") or b""
    assert sum(events) == 1


@pytest.mark.parametrize("folded_between", [True, False], ids=["stored before", "same fold"])
def test_a_message_resent_in_a_different_batch_counts_once(
    client: Any, redis: Redis, folded_between: bool
) -> None:
    first = sample("track__context_group_id.json", messageId="m-1")
    second = sample("track__context_group_id.json", messageId="m-2")
    post(client, json.dumps([first]))
    if folded_between:
        folded(client, redis)
    answer = post(client, json.dumps([first, second]))  # Segment batched the retry with m-2
    assert answer.json["events"] == 2  # accepted; the fold drops the message it has
    folded(client, redis)
    events = redis.get("ci:{acct:northwind}:daily:events") or b""
    assert sum(events) == 2


def test_the_same_message_twice_in_one_batch_counts_once(client: Any, redis: Redis) -> None:
    track = sample("track__context_group_id.json", messageId="m-1")
    answer = post(client, json.dumps([track, track]))
    folded(client, redis)
    events = redis.get("ci:{acct:northwind}:daily:events") or b""
    assert sum(events) == 1
    assert answer.json["skipped"] == {"repeated messageId": 1}


def test_a_message_stored_by_another_consumer_meanwhile_counts_once(
    client: Any, redis: Redis
) -> None:
    first = sample("track__context_group_id.json", messageId="m-1")
    second = sample("track__context_group_id.json", messageId="m-2")
    post(client, json.dumps([first, second]))
    post(client, json.dumps([first]))  # a retry made up differently, accepted after
    config = client.application.extensions["integration.config"]
    ingest_stream.ensure_group(redis)
    held_by_a = ingest_stream.read(redis, "a", 1, None)
    held_by_b = ingest_stream.read(redis, "b", 1, None)
    queue = EvaluationQueue(redis, 0)
    assert fold_entries(redis, held_by_b, "b", config, queue) == 1  # b stores m-1 first
    assert fold_entries(redis, held_by_a, "a", config, queue) == 1  # a finds m-1 taken: m-2
    events = redis.get("ci:{acct:northwind}:daily:events") or b""
    assert sum(events) == 2
    assert redis.xlen(keys.ingest_stream()) == 0
