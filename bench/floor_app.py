"""The durable-acceptance floor for bench.ingest (DESIGN.md, issue 14): the least a webhook must do
before a 202. It verifies the Standard Webhooks signature, validates the body with pydantic (the
same UsageEventIn model /webhooks/usage uses) and makes ONE pipelined Redis write: the dedupe
mark (SET NX) and the stream append (XADD of the body)."""

from __future__ import annotations

import json
import os

from flask import Flask, request
from pydantic import TypeAdapter
from redis import Redis
from standardwebhooks.webhooks import Webhook

from integration.signals.events import UsageEventIn

STREAM = "bench:floor:stream"
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def create_app() -> Flask:
    app = Flask(__name__)
    redis = Redis.from_url(os.environ["REDIS_URL"])
    webhook = Webhook(os.environ["BENCH_SECRET"])
    events = TypeAdapter(list[UsageEventIn])

    @app.post("/floor")
    def floor() -> tuple[str, int]:
        text = request.get_data().decode("utf-8")
        headers = {name: request.headers[name] for name in HEADERS}
        webhook.verify(text, headers, json_parse=False)
        body = json.loads(text)
        events.validate_python(body if isinstance(body, list) else [body])
        pipe = redis.pipeline(transaction=True)
        pipe.set(f"bench:floor:seen:{headers['webhook-id']}", 1, nx=True, ex=7 * 24 * 3600)
        pipe.xadd(STREAM, {"b": text})
        pipe.execute()
        return "accepted", 202

    return app
