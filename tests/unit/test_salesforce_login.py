"""Each login flow hands simple-salesforce its own credentials, and only those."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from adapters.salesforce import login
from integration.config.schema import SalesforceAuth, SalesforceCrm


@pytest.mark.parametrize(
    ("flow", "credentials"),
    [
        (
            "jwt",
            {
                "username": "SALESFORCE_USERNAME!",
                "consumer_key": "SALESFORCE_CONSUMER_KEY!",
                "privatekey": "SALESFORCE_PRIVATE_KEY!",
            },
        ),
        (
            "client_credentials",
            {
                "consumer_key": "SALESFORCE_CONSUMER_KEY!",
                "consumer_secret": "SALESFORCE_CONSUMER_SECRET!",
            },
        ),
        (
            "password",
            {
                "username": "SALESFORCE_USERNAME!",
                "password": "SALESFORCE_PASSWORD!",
                "security_token": "SALESFORCE_SECURITY_TOKEN!",
            },
        ),
    ],
)
def test_each_flow_logs_in_with_its_own_secrets(
    flow: str, credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(login, "Salesforce", lambda **kwargs: seen.update(kwargs))
    settings = SalesforceCrm.model_validate(
        {"auth": SalesforceAuth(flow=flow, domain="acme.my"), "api_version": "62.0"}  # type: ignore[arg-type]
    )
    session = requests.Session()
    login.login_with(settings, lambda name: name + "!")(session)
    assert seen == credentials | {"domain": "acme.my", "version": "62.0", "session": session}
