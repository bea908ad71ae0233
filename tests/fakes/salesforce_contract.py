"""Checks a request our Salesforce adapter sent against Salesforce's published API descriptions.

Operations come from the official Postman collection in $VENDOR_SPECS_DIR/salesforce (by default
../shared/specs/salesforce): the method and URL template of each request, plus the ones
`reference/salesforce.md` documents from the REST and Actions guides but the 2021 collection
lacks; without the collection (tests/specs_folder.py) operations are not checked. Bodies are
checked for the shapes those guides give: collections need `allOrNone` and records with
`attributes.type` (and `id` to update), actions need `inputs`, queries need `q`.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from requests import PreparedRequest

from tests.specs_folder import vendor_specs_dir, vendor_specs_present

COLLECTION = Path("salesforce", "postman-salesforce-apis", "src", "collections")
# reference/salesforce.md 2 (collections update), 6 (customNotificationAction), 7 (cadences).
DOCUMENTED = [
    ("PATCH", "/services/data/v{{version}}/composite/sobjects"),
    ("POST", "/services/data/v{{version}}/actions/standard/<ACTION_NAME>"),
]


def _pattern(template: str) -> re.Pattern[str]:
    path = template.split("?", 1)[0]
    path = re.sub(r"^\{\{[^}]+\}\}(\{\{[^}]+\}\})?", "", path)  # the endpoint host variables
    regex = re.escape(path.rstrip("/"))
    regex = regex.replace(re.escape("{{version}}"), r"\d+\.\d")
    regex = re.sub(r"<[A-Z_]+>", "[^/]+", regex.replace("\\<", "<").replace("\\>", ">"))
    return re.compile(f"^{regex}/?$")


@cache
def operations() -> list[tuple[str, re.Pattern[str], str]]:
    found = []
    for path in sorted((vendor_specs_dir() / COLLECTION).rglob("*.json")):
        item = json.loads(path.read_text())
        if "url" in item and "method" in item:
            found.append((item["method"], _pattern(item["url"]), path.name))
    found += [(method, _pattern(url), "reference/salesforce.md") for method, url in DOCUMENTED]
    return found


def problems(request: PreparedRequest) -> list[str]:
    url = urlsplit(request.url or "")
    method = request.method or ""
    if url.path.endswith("/services/oauth2/token"):
        return []
    if vendor_specs_present() and not any(
        m == method and pattern.match(url.path) for m, pattern, _ in operations()
    ):
        return [f"no operation {method} {url.path} in the Salesforce API descriptions"]
    body = json.loads(request.body) if request.body else None
    return _body_problems(method, url.path, parse_qs(url.query), body)


def _body_problems(method: str, path: str, query: dict[str, list[str]], body: Any) -> list[str]:  # noqa: ANN401
    where = f"{method} {path}"
    if path.endswith(("/query", "/query/")) and not query.get("q"):
        return [f"{where}: a query needs q"]
    if path.endswith("/composite/sobjects"):
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not 0 < len(records) <= 200:
            return [f"{where}: records must be a list of 1 to 200"]
        if not isinstance(body.get("allOrNone"), bool):
            return [f"{where}: allOrNone must be a boolean"]
        bad = [
            i
            for i, r in enumerate(records)
            if not r.get("attributes", {}).get("type") or (method == "PATCH" and not r.get("id"))
        ]
        return [f"{where}: records {bad} lack attributes.type or id"] if bad else []
    if "/actions/standard/" in path:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        return [] if isinstance(inputs, list) and inputs else [f"{where}: inputs must be a list"]
    return []
