"""A fake HubSpot on loopback (tests/fakes/hubspot_server.py) and our adapter pointed at it.

Every test ends by checking each request the adapter sent against HubSpot's OpenAPI specs in
$VENDOR_SPECS_DIR/hubspot, when they are there (tests/specs_folder.py).
"""

from __future__ import annotations

import pytest
from redis import Redis

from adapters.hubspot.adapter import HubSpotCrm
from adapters.hubspot.auth import PrivateAppToken
from integration.config.schema import HubSpotCrm as HubSpotSettings
from tests.fakes.hubspot_server import FakeHubSpot


class Sleeps(list[float]):
    """Records the waits the adapter asks for, so no test sleeps."""

    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 3))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_adapter(hub: FakeHubSpot, redis: Redis, sleeps: Sleeps, **settings: object) -> HubSpotCrm:
    values = {"base_url": hub.base_url, "lookup_cache_seconds": 0} | settings
    config = HubSpotSettings.model_validate(values)
    return HubSpotCrm(config, "product_account_id", PrivateAppToken("test-token"), redis, sleeps)


@pytest.fixture
def crm(hub: FakeHubSpot, redis: Redis, sleeps: Sleeps) -> HubSpotCrm:
    return make_adapter(hub, redis, sleeps)
