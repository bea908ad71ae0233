"""`integration validate --online` reads the org's describes and names every field problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from integration.cli.main import main
from tests.contract.salesforce.conftest import Org, fixture

ENV = {
    "SALESFORCE_CONSUMER_KEY": "key",
    "SALESFORCE_CONSUMER_SECRET": "secret",
    "USAGE_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "JOB_CHANGES_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


def account_describe() -> dict[str, Any]:
    """Our Account describe excerpt: every field the config below maps to, as an admin made it."""
    return fixture("account_describe__excerpt.json")


def described(account: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [f for f in account["fields"] if f["name"] == name]
    return found


def field(name: str, kind: str, updateable: bool = True) -> dict[str, Any]:
    base = copy.deepcopy(described(account_describe(), "Name"))
    return base | {"name": name, "type": kind, "updateable": updateable, "custom": True}


def write_config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "salesforce.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "crm": {
                    "kind": "salesforce",
                    "salesforce": {
                        "auth": {"flow": "client_credentials", "domain": "acme.my"},
                        "task_key_field": "Playbook_Key__c",
                    },
                },
                "account_match": {"crm_field": "Product_Account_Id__c"},
                "fields": {
                    "risk_level": "Churn_Risk_Level__c",
                    "risk_reasons": "Churn_Risk_Reasons__c",
                    "usage_trend_pct": "Usage_Trend_Pct__c",
                    "license_utilization_pct": "License_Utilization_Pct__c",
                    "last_active_date": "Last_Product_Activity__c",
                },
            }
        )
    )
    return path


def test_online_validation_lists_every_missing_read_only_or_mistyped_field(
    org: Org, tmp_path: Path, redis_url: str
) -> None:
    account = account_describe()
    described(account, "Usage_Trend_Pct__c")["type"] = "string"
    described(account, "License_Utilization_Pct__c")["updateable"] = False
    org.json("GET", "sobjects/Account/describe", account)
    org.json(
        "GET", "sobjects/Task/describe", {"name": "Task", "fields": [field("Subject", "string")]}
    )
    result = CliRunner().invoke(
        main,
        ["validate", "--online", str(write_config(tmp_path, redis_url))],
        env=ENV | {"REDIS_URL": redis_url},
    )
    assert result.exit_code == 1
    assert result.output.splitlines()[-4:] == [
        "  fields.usage_trend_pct: Account.Usage_Trend_Pct__c is a string field; expected one of "
        "currency, double, int, percent",
        "  fields.license_utilization_pct: Account.License_Utilization_Pct__c is read-only for "
        "this user (field-level security)",
        "  crm.salesforce.task_key_field: Task.Playbook_Key__c does not exist or this user cannot "
        "see it (check the API name and field-level security)",
        "3 field problem(s) in the org",
    ]


def test_online_validation_passes_when_every_field_fits(
    org: Org, tmp_path: Path, redis_url: str
) -> None:
    account = account_describe()
    org.json("GET", "sobjects/Account/describe", account)
    org.json(
        "GET",
        "sobjects/Task/describe",
        {"name": "Task", "fields": [field("Playbook_Key__c", "string")]},
    )
    result = CliRunner().invoke(
        main,
        ["validate", "--online", str(write_config(tmp_path, redis_url))],
        env=ENV | {"REDIS_URL": redis_url},
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "  online: every mapped field exists in the org and takes writes"
    )
