"""Salesforce mocked with `responses`, shaped like the REST API; every request is checked
against Salesforce's published API descriptions (tests/fakes/salesforce_contract.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from redis import Redis

from adapters.salesforce.adapter import SalesforceCrm
from adapters.salesforce.login import login_with
from integration.config.schema import SalesforceAuth
from integration.config.schema import SalesforceCrm as SalesforceSettings
from tests.fakes.salesforce_contract import problems

INSTANCE = "https://acme.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"
TOKEN_URL = f"{INSTANCE}/services/oauth2/token"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "salesforce"
LIMIT_INFO = {"Sforce-Limit-Info": "api-usage=18/15000"}


def fixture(name: str) -> Any:  # noqa: ANN401 - JSON of any shape
    return json.loads((FIXTURES / name).read_text())


class Org:
    """What the tests tell the mocked org to answer, and what it was sent."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps
        self.soql: list[str] = []
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.logins = 0
        self.limit_info = LIMIT_INFO  # what the org reports as used of its daily allocation
        rsps.add_callback(responses.POST, TOKEN_URL, callback=self._token)
        rsps.add_callback(
            responses.GET, re.compile(rf"{re.escape(API)}/query/?\?.*"), callback=self._query
        )

    def _token(self, request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
        self.logins += 1
        body = {
            "access_token": f"00Dxx!token{self.logins}",
            "instance_url": INSTANCE,
            "id": f"{INSTANCE}/id/00Dxx/005xx",
            "token_type": "Bearer",
            "issued_at": "1700000000000",
            "signature": "sig",
        }
        return 200, {}, json.dumps(body)

    def _query(self, request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
        soql = parse_qs(urlsplit(request.url).query)["q"][0]
        self.soql.append(soql)
        table = re.search(r"FROM (\w+)", soql)
        rows = self.tables.get(table.group(1) if table else "", [])
        matching = [row for row in rows if _matches(row, soql)]
        body = {"totalSize": len(matching), "done": True, "records": matching}
        return 200, self.limit_info, json.dumps(body)

    def json(
        self,
        method: str,
        path: str,
        body: Any,
        status: int = 200,  # noqa: ANN401
        headers: dict[str, str] | None = None,
    ) -> None:
        self.rsps.add(
            method,
            f"{API}/{path}",
            json=body,
            status=status,
            headers={**LIMIT_INFO, **(headers or {})},
        )

    def created(self, sobject: str) -> list[dict[str, Any]]:
        """Every record of this type sent for creation, one by one or in a collection."""
        records = self.sent("POST", f"/sobjects/{sobject}")
        for body in self.sent("POST", "/composite/sobjects"):
            records += [r for r in body["records"] if r["attributes"]["type"] == sobject]
        return records

    def sent(self, method: str, path_end: str) -> list[Any]:
        return [
            json.loads(call.request.body)
            for call in self.rsps.calls
            if call.request.method == method and urlsplit(call.request.url).path.endswith(path_end)
        ]


def _matches(row: dict[str, Any], soql: str) -> bool:
    """Enough of SOQL's WHERE for our queries: `F = 'v'`, `F IN ('a','b')`, `F LIKE '%v%'`."""
    where = soql.split(" WHERE ", 1)[1] if " WHERE " in soql else ""
    equal = re.match(r"(\w+) = '((?:[^'\\]|\\.)*)'", where)
    if equal:
        return str(row.get(equal.group(1))).lower() == equal.group(2).replace("\\", "").lower()
    within = re.match(r"(\w+) IN \((.*)\)", where)
    if within:
        values = re.findall(r"'((?:[^'\\]|\\.)*)'", within.group(2))
        return str(row.get(within.group(1))) in values
    like = re.match(r"(\w+) LIKE '%(.*)%'", where)
    if like:
        wanted = like.group(2).replace("\\", "").lower()  # SOQL LIKE ignores case
        return wanted in str(row.get(like.group(1)) or "").lower()
    return True


@pytest.fixture
def org() -> Iterator[Org]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mocked = Org(rsps)
        yield mocked
        assert [p for call in rsps.calls for p in problems(call.request)] == []


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


SECRETS = {"SALESFORCE_CONSUMER_KEY": "key", "SALESFORCE_CONSUMER_SECRET": "secret"}


def make_crm(redis: Redis, sleeps: Callable[[float], None], **settings: Any) -> SalesforceCrm:  # noqa: ANN401
    values = {"auth": SalesforceAuth(flow="client_credentials", domain="acme.my")} | settings
    config = SalesforceSettings.model_validate(values)
    return SalesforceCrm(
        config, "Product_Account_Id__c", login_with(config, SECRETS.__getitem__), redis, sleeps
    )


@pytest.fixture
def crm(redis: Redis, sleeps: Sleeps) -> SalesforceCrm:
    return make_crm(
        redis,
        sleeps,
        task_key_field="Playbook_Key__c",
        notification_type="Churn_Risk_Alert",
        champion_field="Champion__c",
    )
