"""The baseline for bench.ingest: a bare Flask endpoint that does one Redis round trip."""

from __future__ import annotations

import os

from flask import Flask
from redis import Redis


def create_app() -> Flask:
    app = Flask(__name__)
    redis = Redis.from_url(os.environ["REDIS_URL"])

    @app.post("/bare")
    def bare() -> tuple[str, int]:
        redis.incr("bench:bare")
        return "accepted", 202

    return app
