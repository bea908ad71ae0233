"""The fake org's request check really reads Salesforce's Postman collection.

Without the collection `problems()` stops checking operations and says nothing, so this test is
what lets REQUIRE_VENDOR_SPECS=1 notice a missing or empty Salesforce folder.
"""

from __future__ import annotations

import pytest
from requests import Request

from tests.contract.salesforce.conftest import API
from tests.fakes.salesforce_contract import DOCUMENTED, operations, problems


def from_collection(method: str, path: str) -> list[str]:
    """The collection's files that describe this request (the documented extras left out)."""
    return [
        source
        for m, pattern, source in operations()
        if m == method and pattern.match(path) and source != "reference/salesforce.md"
    ]


@pytest.mark.vendor_specs
def test_the_postman_collection_is_read_and_unknown_paths_are_refused() -> None:
    assert len(operations()) > len(DOCUMENTED)
    assert from_collection("POST", "/services/data/v62.0/sobjects/Task") == ["sobject_create.json"]
    assert from_collection("GET", "/services/data/v62.0/query") == ["query.json"]
    unknown = Request("POST", f"{API}/sobjects/Task/bulkify", json={"Subject": "s"}).prepare()
    assert problems(unknown) == [
        "no operation POST /services/data/v62.0/sobjects/Task/bulkify in the Salesforce API "
        "descriptions"
    ]
