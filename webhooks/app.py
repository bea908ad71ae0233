"""The Flask app factory: one blueprint per source, plus /healthz."""

from __future__ import annotations

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis import Redis
from redis.exceptions import RedisError

from integration.config.schema import Config
from integration.config.settings import Settings
from integration.jobs.context import connect_redis, connect_state_redis, read_config
from integration.logs import configure_logging
from integration.store import layout
from integration.store.metrics import RedisCounters
from webhooks import clients, hubspot, openapi, people, salesforce, segment, usage
from webhooks.edge import redis, register_error_handlers

MAX_BODY_BYTES = 5 * 1024 * 1024


def create_app(settings: Settings | None = None, config: Config | None = None) -> Flask:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["integration.config"] = config or read_config(settings.config)
    queue_redis = connect_redis(settings.redis_url)
    state_redis = connect_state_redis(settings, queue_redis)
    clients.attach(app, state_redis, queue_redis)
    layout.prepare(state_redis)
    register_error_handlers(app)
    app.register_blueprint(usage.bp)
    app.register_blueprint(people.bp)
    app.register_blueprint(hubspot.bp)
    app.register_blueprint(salesforce.bp)
    app.register_blueprint(segment.bp)
    app.register_blueprint(openapi.bp)
    app.add_url_rule("/healthz", view_func=healthz)
    app.add_url_rule("/metrics", view_func=metrics)
    return app


def healthz() -> tuple[Response, int]:
    """200 when every Redis the app writes to answers (the queue Redis and, when separate, the
    state Redis), else 503 naming the one that does not."""
    answers = {name: _answers(client) for name, client in clients.clients().items()}
    healthy = all(answer == "ok" for answer in answers.values())
    return jsonify(status="ok" if healthy else "unavailable", **answers), 200 if healthy else 503


def _answers(client: Redis) -> str:
    try:
        client.ping()
    except RedisError:
        return "unreachable"
    return "ok"


def metrics() -> Response:
    """Prometheus text format of the counters all processes share in Redis."""
    registry = CollectorRegistry()
    registry.register(RedisCounters(redis()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
