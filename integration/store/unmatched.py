"""Signals whose account the CRM does not have: kept for an admin to list, never dropped.

One entry per (kind, reference) with a count, so a busy unknown account cannot push a rare
unmatched people signal out of sight.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline

from integration.store import keys
from integration.store.metrics import count

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Unmatched:
    kind: str
    reference: str
    signal_id: str
    count: int
    first_seen: str
    last_seen: str


def record_unmatched(
    redis: Redis, kind: str, reference: str, signal_id: str, now: datetime
) -> None:
    """Count one more signal for this reference. Workers and webhooks record at the same time,
    so the read-modify-write runs in a WATCH transaction and no count is lost."""
    field = f"{kind}:{reference}"

    def add_one(pipe: Pipeline) -> None:
        raw = pipe.hget(keys.unmatched(), field)
        entry: dict[str, Any] = (
            json.loads(raw)
            if raw
            else {"kind": kind, "reference": reference, "count": 0, "first_seen": now.isoformat()}
        )
        entry |= {
            "count": int(entry["count"]) + 1,
            "last_seen": now.isoformat(),
            "signal_id": signal_id or entry.get("signal_id", ""),
        }
        pipe.multi()
        pipe.hset(keys.unmatched(), field, json.dumps(entry))

    redis.transaction(add_one, keys.unmatched())
    count(redis, "signals_unmatched", {"kind": kind})
    logger.warning("no CRM record for signal", extra={"kind": kind, "signal_id": signal_id})


def list_unmatched(redis: Redis) -> list[Unmatched]:
    """Newest first."""
    entries = [Unmatched(**json.loads(raw)) for raw in redis.hvals(keys.unmatched())]
    return sorted(entries, key=lambda entry: entry.last_seen, reverse=True)


def forget_unmatched(redis: Redis, kind: str, references: Sequence[str]) -> None:
    """Called once the CRM has the records, so the list shows only what still needs fixing."""
    if references:
        redis.hdel(keys.unmatched(), *(f"{kind}:{reference}" for reference in references))
