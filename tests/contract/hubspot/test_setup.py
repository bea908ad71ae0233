"""Setting up a portal: provisioning our properties, OAuth tokens, and the short lookup cache."""

from __future__ import annotations

import pytest
from redis import Redis

from adapters.hubspot.auth import OAuthTokens
from adapters.hubspot.provision import provision
from integration.config.schema import Config, CrmConfig, HubSpotCrm
from integration.errors import CrmFatalError
from tests.contract.hubspot.conftest import Sleeps, make_adapter
from tests.fakes.hubspot_server import FakeHubSpot


def config_for(hub: FakeHubSpot) -> Config:
    return Config(crm=CrmConfig(kind="hubspot", hubspot=HubSpotCrm(base_url=hub.base_url)))


def test_provision_creates_typed_properties_then_reports_them_as_there(
    hub: FakeHubSpot, redis: Redis, sleeps: Sleeps
) -> None:
    crm = make_adapter(hub, redis, sleeps)
    assert provision(crm, config_for(hub)) == [
        "property group companies.cs_playbooks: created",
        "property group tasks.cs_playbooks: created",
        "property companies.churn_risk_level (enumeration): created",
        "property companies.churn_risk_reasons (string): created",
        "property companies.usage_trend_pct (number): created",
        "property companies.license_utilization_pct (number): created",
        "property companies.last_product_activity_date (date): created",
        "property companies.product_account_id (string): created",
        "property tasks.cs_playbook_key (string): created",
    ]
    level = hub.properties["companies"]["churn_risk_level"]
    assert [o["value"] for o in level["options"]] == ["none", "low", "medium", "high"]
    assert "product_account_id" in hub.unique_properties["companies"]

    again = provision(crm, config_for(hub))
    assert all(line.endswith(": already there") for line in again)


def test_provision_warns_about_a_property_of_the_wrong_type(
    hub: FakeHubSpot, redis: Redis, sleeps: Sleeps
) -> None:
    crm = make_adapter(hub, redis, sleeps)
    provision(crm, config_for(hub))
    hub.properties["companies"]["usage_trend_pct"]["type"] = "string"
    lines = provision(crm, config_for(hub))
    assert (
        "property companies.usage_trend_pct (number): EXISTS AS string, expected number; "
        "writes may be refused, map another property or change its type in HubSpot"
    ) in lines


def test_an_oauth_token_is_refreshed_once_and_shared_through_redis(
    hub: FakeHubSpot, redis: Redis
) -> None:
    tokens = OAuthTokens(hub.base_url, "client-id", "client-secret", "test-refresh-token", redis)
    assert tokens.token() == "test-token"
    assert tokens.token() == "test-token"
    assert sum(1 for r in hub.requests if r.path == "/oauth/v1/token") == 1
    assert redis.ttl("ci:crm:hubspot:oauth_access_token") > 0


def test_a_revoked_refresh_token_is_a_fatal_error(hub: FakeHubSpot, redis: Redis) -> None:
    tokens = OAuthTokens(hub.base_url, "client-id", "client-secret", "revoked", redis)
    with pytest.raises(CrmFatalError, match="refresh_token failed"):
        tokens.token()


def test_account_lookups_are_cached_briefly(hub: FakeHubSpot, redis: Redis, sleeps: Sleeps) -> None:
    crm = make_adapter(hub, redis, sleeps, lookup_cache_seconds=60)
    company = hub.add_company({"name": "Acme", "product_account_id": "acme"})
    assert crm.find_accounts(["acme"])["acme"].crm_id == company
    assert crm.find_accounts(["acme"])["acme"].crm_id == company
    assert sum(1 for r in hub.requests if r.path.endswith("/batch/read")) == 1


def test_provision_warns_about_a_match_property_without_unique_values_and_missing_options(
    hub: FakeHubSpot, redis: Redis, sleeps: Sleeps
) -> None:
    crm = make_adapter(hub, redis, sleeps)
    provision(crm, config_for(hub))
    hub.properties["companies"]["product_account_id"]["hasUniqueValue"] = False
    hub.properties["companies"]["churn_risk_level"]["options"].pop()  # "high" is gone
    lines = provision(crm, config_for(hub))
    assert (
        "property companies.product_account_id (string): EXISTS WITHOUT unique values, so "
        "companies cannot be read by it; HubSpot cannot make it unique later: map a new "
        "property with unique values"
    ) in lines
    assert (
        "property companies.churn_risk_level (enumeration): LACKS OPTIONS high; add them in "
        "HubSpot or writes of those values are refused"
    ) in lines
