"""Counters every process adds to in Redis, exposed by the web app at /metrics.

Workers are separate processes (and machines), so per-process Prometheus counters would each see
a part; one Redis hash holds the totals, as it holds the rest of the service's state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from redis import Redis

from integration.store import keys

METRICS_KEY = f"{keys.PREFIX}:metrics"
DESCRIPTIONS = {
    "signals_unmatched": "Signals whose account or contact the CRM does not have.",
    "crm_actions": "Tasks, notes and enrollments created in the CRM.",
    "crm_errors": "CRM calls that failed after retries, by kind (retriable or fatal).",
}


def count(redis: Redis, name: str, labels: Mapping[str, str], amount: int = 1) -> None:
    field = name + "|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    redis.hincrby(METRICS_KEY, field, amount)


class RedisCounters(Collector):
    """A Prometheus collector reading the shared totals at scrape time."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[CounterMetricFamily]:
        families: dict[str, CounterMetricFamily] = {}
        for raw_field, raw_value in sorted(self.redis.hgetall(METRICS_KEY).items()):
            name, _, label_text = keys.text(raw_field).partition("|")
            labels = dict(pair.split("=", 1) for pair in label_text.split(",") if pair)
            family = families.get(name)
            if family is None:
                family = CounterMetricFamily(
                    f"cs_{name}", DESCRIPTIONS.get(name, name), labels=sorted(labels)
                )
                families[name] = family
            family.add_metric([labels[k] for k in sorted(labels)], float(keys.text(raw_value)))
        yield from families.values()
