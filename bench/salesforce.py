"""Salesforce API calls per 1,000 account updates, next to the one-record-per-call baseline.

    python -m bench.salesforce [--accounts 1000]

Salesforce counts calls against a daily allocation per org (a collection call counts once), so
the figure that matters is calls, not seconds. The org is mocked in-process with `responses`,
answering like the REST API; the baseline PATCHes one Account per call through simple-salesforce.
Target: 5 calls per 1,000 (the collection limit is 200 records).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from contextlib import ExitStack
from typing import Any

import responses
from redis import Redis

from adapters.protocol import FieldUpdate
from adapters.salesforce.adapter import SalesforceCrm
from adapters.salesforce.login import login_with
from integration.cli.devredis import dev_database
from integration.config.schema import SalesforceAuth
from integration.config.schema import SalesforceCrm as SalesforceSettings
from integration.config.settings import Settings

INSTANCE = "https://bench.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"


def _collection_ok(request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
    records = json.loads(request.body)["records"]
    return 200, {}, json.dumps([{"id": r["id"], "success": True, "errors": []} for r in records])


def measure(accounts: int, redis: Redis) -> dict[str, float]:
    settings = SalesforceSettings(auth=SalesforceAuth(flow="client_credentials", domain="bench.my"))
    secrets = {"SALESFORCE_CONSUMER_KEY": "k", "SALESFORCE_CONSUMER_SECRET": "s"}
    crm = SalesforceCrm(
        settings, "Product_Account_Id__c", login_with(settings, secrets.__getitem__), redis
    )
    updates = [
        FieldUpdate(f"001{n:015d}", {"Churn_Risk_Level__c": "high"}) for n in range(accounts)
    ]
    with responses.RequestsMock() as rsps:
        rsps.add(
            responses.POST,
            f"{INSTANCE}/services/oauth2/token",
            json={"access_token": "t", "instance_url": INSTANCE},
        )
        rsps.add_callback(responses.PATCH, f"{API}/composite/sobjects", callback=_collection_ok)
        rsps.add(responses.PATCH, re.compile(rf"{API}/sobjects/Account/.*"), status=204)
        crm.transport.client()  # log in before counting
        before = len(rsps.calls)
        started = time.perf_counter()
        crm.write_fields(updates)
        batched_s = time.perf_counter() - started
        batched = len(rsps.calls) - before
        sf = crm.transport.client()
        before = len(rsps.calls)
        started = time.perf_counter()
        for update in updates:  # the baseline: one record per call
            sf.Account.update(update.crm_id, dict(update.values))
        single_s = time.perf_counter() - started
        one_by_one = len(rsps.calls) - before
    scale = 1000 / accounts
    return {
        "salesforce.calls_per_1000_field_updates": batched * scale,
        "salesforce.baseline_calls_per_1000_updates_one_by_one": one_by_one * scale,
        "salesforce.batched_update_s": round(batched_s, 3),
        "salesforce.baseline_one_by_one_update_s": round(single_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    args = parser.parse_args()
    database = ExitStack()  # an empty database, claimed; flushed and freed at the end
    redis = Redis.from_url(database.enter_context(dev_database(Settings().redis_url)))
    try:
        for name, value in measure(args.accounts, redis).items():
            print(name, value)
        print("python", platform.python_version(), "redis", redis.info()["redis_version"])
    finally:
        database.close()


if __name__ == "__main__":
    main()
