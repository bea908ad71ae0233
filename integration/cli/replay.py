"""Post sample signals to a running web app, signed as a Standard Webhooks sender would sign them.

Sample files carry fixed dates; replay shifts them so the newest usage day is yesterday, which is
what an evaluation today looks at.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook

from integration.config.schema import Config

USAGE_CHUNK = 500
HTTP_TIMEOUT_SECONDS = 30


def replay_folder(
    folder: Path, base_url: str, config: Config, twice: bool = False
) -> Iterator[str]:
    secrets = {
        "usage": config.secret(config.webhooks.usage.secret_env),
        "job-changes": config.secret(config.webhooks.job_changes.secret_env),
    }
    sent = [
        (kind, path, payload, f"msg_{uuid.uuid4().hex}")
        for kind, path, payload in deliveries(folder, datetime.now(UTC).date())
    ]
    for round_number in range(2 if twice else 1):
        label = "re-sent" if round_number else "sent"
        for kind, path, payload, msg_id in sent:
            answer = _post(f"{base_url}/webhooks/{kind}", secrets[kind], payload, msg_id)
            yield f"{label} {path.name} -> {answer.status_code} {answer.text.strip()}"


def deliveries(folder: Path, today: date) -> list[tuple[str, Path, Any]]:
    """What replay posts, in order: (endpoint, file, body). Each usage file in USAGE_CHUNK
    events at a time (in time order, as a sender catching up would), then the job changes; all
    shifted so the newest usage day is the day before `today`."""
    usage_files = sorted((folder / "usage").glob("*.json"))
    people_files = sorted((folder / "job-changes").glob("*.json"))
    usage = {path: json.loads(path.read_text()) for path in usage_files}
    people = {path: json.loads(path.read_text()) for path in people_files}
    shift = _shift_to_yesterday(usage, today)
    planned: list[tuple[str, Path, Any]] = []
    for path, events in usage.items():
        shifted = [_shifted(event, "timestamp", shift) for event in events]
        for start in range(0, len(shifted), USAGE_CHUNK):
            planned.append(("usage", path, shifted[start : start + USAGE_CHUNK]))
    for path, body in people.items():
        items = body if isinstance(body, list) else [body]
        shifted_people = [_shifted(item, "detected_at", shift) for item in items]
        planned.append(
            ("job-changes", path, shifted_people if isinstance(body, list) else shifted_people[0])
        )
    return planned


def _post(url: str, secret: str, payload: object, msg_id: str) -> requests.Response:
    body = json.dumps(payload)
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
    return requests.post(url, data=body.encode(), headers=headers, timeout=HTTP_TIMEOUT_SECONDS)


def _shift_to_yesterday(usage: dict[Path, list[dict[str, Any]]], today: date) -> timedelta:
    days = [
        datetime.fromisoformat(e["timestamp"]).date() for events in usage.values() for e in events
    ]
    if not days:
        return timedelta(0)
    yesterday = today - timedelta(days=1)
    return timedelta(days=(yesterday - max(days)).days)


def _shifted(item: dict[str, Any], field: str, shift: timedelta) -> dict[str, Any]:
    if field not in item:
        return item
    moved = datetime.fromisoformat(item[field]) + shift
    return item | {field: moved.isoformat()}
