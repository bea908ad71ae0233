"""The web app's two Redis clients: per-account state, and the queue Redis RQ runs on.

RQ cannot run on a Redis Cluster (rq issue 1942), so every enqueue goes to the queue client,
while signals that are state (ingest, unmatched references) go to the state client. Without
INTEGRATION_STATE_REDIS_URL both names give the same client. `webhooks.app.create_app`
attaches them; `webhooks.edge.redis()` is the state client.
"""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis

STATE = "integration.redis"
QUEUE = "integration.queue_redis"


def attach(app: Flask, state: Redis, queue: Redis) -> None:
    app.extensions[STATE] = state
    app.extensions[QUEUE] = queue


def queue_redis() -> Redis:
    """The Redis RQ's queues are on: every enqueue from a request goes here."""
    return current_app.extensions[QUEUE]  # type: ignore[no-any-return]


def clients() -> dict[str, Redis]:
    """Each distinct client by the setting that names it, for /healthz: `redis` (the queue
    Redis, REDIS_URL) and, when state has its own, `state_redis`."""
    state, queue = current_app.extensions[STATE], current_app.extensions[QUEUE]
    return {"redis": queue} if state is queue else {"redis": queue, "state_redis": state}
