"""Settings name two Redis: the queue Redis (RQ) and, optionally, a state Redis or Cluster."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from integration.config.settings import Settings


def test_state_redis_defaults_to_none_so_one_redis_holds_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "INTEGRATION_STATE_REDIS_URL",
        "STATE_REDIS_URL",
        "INTEGRATION_STATE_REDIS_CLUSTER",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(redis_url="redis://queue:6379/0")
    assert (settings.state_redis_url, settings.state_redis_cluster) == (None, False)


def test_state_redis_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEGRATION_STATE_REDIS_URL", "redis://state-1:7000")
    monkeypatch.setenv("INTEGRATION_STATE_REDIS_CLUSTER", "1")
    settings = Settings()
    assert (settings.state_redis_url, settings.state_redis_cluster) == (
        "redis://state-1:7000",
        True,
    )


def test_a_cluster_without_its_own_url_is_refused_with_what_to_set() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(state_redis_cluster=True)
    assert (
        "INTEGRATION_STATE_REDIS_CLUSTER is set but INTEGRATION_STATE_REDIS_URL is not: name one "
        "node of the cluster (RQ's queues stay on INTEGRATION_REDIS_URL)"
    ) in str(raised.value)
