"""Check requests (and the fake's answers) against HubSpot's own OpenAPI documents.

The documents in $VENDOR_SPECS_DIR/hubspot (tests/specs_folder.py) mark request fields required
that the live API does not need (reference/hubspot.md section 8), so `required` is dropped from
every schema a request body reaches; types, enums, field names, paths, methods and parameters
stay as the specs say.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.specs_folder import vendor_specs_dir

if TYPE_CHECKING:
    from openapi_core import OpenAPI
    from openapi_core.datatypes import RequestParameters

# Every document states this server; requests are rebuilt onto it so a loopback base URL works.
SERVER = "https://api.hubapi.com"
# The classic versioned paths that hubspot-api-client 12.0.0 calls (specs/hubspot/SOURCES.md).
SPEC_FILES = (
    "crm/companies/v3/companies.json",
    "crm/contacts/v3/contacts.json",
    "crm/tasks/v3/tasks.json",
    "crm/notes/v3/notes.json",
    "crm/objects/v3/objects.json",
    "crm/owners/v3/crmOwners.json",
    "crm/properties/v3/properties.json",
    "crm/associations/v4/associations.json",
    "automation/sequences/v4/sequences.json",
    "auth/oauth/v1/oauth.json",
)
METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def spec_root() -> Path:
    return vendor_specs_dir() / "hubspot"


@dataclass(frozen=True)
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    spec: str


@dataclass(frozen=True)
class _Specs:
    apps: dict[str, OpenAPI]
    operations: tuple[_Operation, ...]


@dataclass
class _SpecRequest:
    """The openapi-core Request protocol, built from plain values."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters


@dataclass
class _SpecResponse:
    """The openapi-core Response protocol, built from plain values."""

    status_code: int
    data: bytes | None
    headers: Headers
    content_type: str


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]  # a JSON pointer into a JSON object


def _relax_schema(
    schema: dict[str, Any], document: dict[str, Any], seen: set[str], forbid_unknown: bool
) -> None:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref not in seen:
            seen.add(ref)
            _relax_schema(_resolve(document, ref), document, seen, forbid_unknown)
        return
    if isinstance(schema.get("required"), list):
        del schema["required"]
    if forbid_unknown and "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    children: list[Any] = list(schema.get("properties", {}).values())
    children += [schema.get(key) for key in ("items", "additionalProperties", "not")]
    for key in ("allOf", "anyOf", "oneOf"):
        children += schema.get(key, [])
    for child in children:
        if isinstance(child, dict):
            _relax_schema(child, document, seen, forbid_unknown)


def relax_requests(document: dict[str, Any], forbid_unknown: bool = False) -> dict[str, Any]:
    """A copy of `document` whose request bodies need no field, and with no security blocks.

    Security is left to the fake: the specs name the private-app header `private-app`, while
    real clients send `Authorization: Bearer`, and openapi-core warns on oauth2 schemes.
    """
    doc = copy.deepcopy(document)
    doc.pop("security", None)
    seen: set[str] = set()
    for path_item in doc.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in METHODS:
                continue
            operation.pop("security", None)
            body = operation.get("requestBody")
            if isinstance(body, dict) and "$ref" in body:
                body = _resolve(doc, body["$ref"])
            for media in (body or {}).get("content", {}).values():
                if isinstance(media.get("schema"), dict):
                    _relax_schema(media["schema"], doc, seen, forbid_unknown)
    # Error answers are declared as */*, which openapi-core does not parse; HubSpot sends JSON.
    for response in doc.get("components", {}).get("responses", {}).values():
        content = response.get("content", {})
        if "*/*" in content:
            content["application/json"] = content.pop("*/*")
    # HubSpot's own task/note examples send association targets as numbers ("to": {"id": 101}),
    # and the live API takes them; the spec types PublicObjectId.id as a string only.
    target = doc.get("components", {}).get("schemas", {}).get("PublicObjectId")
    if target and "id" in target.get("properties", {}):
        described = target["properties"]["id"].get("description", "")
        target["properties"]["id"] = {
            "anyOf": [{"type": "string"}, {"type": "integer"}],
            "description": described,
        }
    return doc


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


@functools.cache
def load_specs(forbid_unknown: bool = False) -> _Specs:
    """Load and relax every document once per process (openapi-core resolves lazily)."""
    # Imported here: openapi-core takes over half a second to import, which a benchmark's fake
    # started with --no-validate should not pay.
    from openapi_core import Config, OpenAPI

    root = spec_root()
    apps: dict[str, OpenAPI] = {}
    operations: list[_Operation] = []
    for name in SPEC_FILES:
        path = root / name
        if not path.is_file():
            continue
        document = relax_requests(json.loads(path.read_text()), forbid_unknown)
        apps[name] = OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))
        for template, path_item in document["paths"].items():
            literal = sum(1 for seg in template.split("/") if seg and "{" not in seg)
            for method in METHODS.intersection(path_item):
                pattern = _template_pattern(template)
                operations.append(_Operation(method, template, pattern, literal, name))
    # The most literal template wins: /crm/v3/objects/tasks over /crm/v3/objects/{objectType}.
    operations.sort(key=lambda op: -op.literal_segments)
    return _Specs(apps, tuple(operations))


def _query_multidict(query: Mapping[str, Any] | str | None, url_query: str) -> ImmutableMultiDict:
    pairs = parse_qsl(url_query, keep_blank_values=True)
    if isinstance(query, str):
        pairs += parse_qsl(query.lstrip("?"), keep_blank_values=True)
    elif query:
        for key, value in query.items():
            values = value if isinstance(value, list | tuple) else [value]
            pairs += [(key, str(v)) for v in values]
    return ImmutableMultiDict(pairs)


def _content_type(headers: Headers) -> str:
    return (headers.get("Content-Type") or "application/json").lower()


def _json_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(root)"


def _describe(error: Exception) -> list[str]:
    from openapi_core.validation.request.exceptions import (  # lazy, see load_specs
        ParameterValidationError,
        RequestBodyValidationError,
    )

    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if isinstance(error, RequestBodyValidationError):
        where = "body"
    elif isinstance(error, ParameterValidationError):
        where = f"{error.location} parameter {error.name}"
    else:
        where = ""
    if schema_errors:
        prefix = f"{where} " if where and where != "body" else ""
        return [f"{prefix}{_json_path(e.absolute_path)}: {e.message}" for e in schema_errors]
    return [f"{error}: {cause}" if cause is not None else str(error)]


class SpecValidator:
    """Validates HubSpot API requests by method and path against the relaxed specs."""

    def __init__(self, forbid_unknown_fields: bool = False) -> None:
        self._specs = load_specs(forbid_unknown_fields)

    def operation(self, method: str, path: str) -> tuple[str, str] | None:
        """(spec file, path template) of the operation serving this request, if any."""
        found = self._find(method, path)
        return (found.spec, found.template) if found else None

    def _find(self, method: str, path: str) -> _Operation | None:
        # The client calls GET /crm/v3/owners/ while the spec names /crm/v3/owners.
        path = path.rstrip("/") or "/"
        for operation in self._specs.operations:
            if operation.method == method.lower() and operation.pattern.match(path):
                return operation
        return None

    def _request(
        self,
        method: str,
        url: str,
        query: Mapping[str, Any] | str | None,
        headers: Headers,
        body: bytes | None,
    ) -> tuple[_Operation | None, _SpecRequest]:
        from openapi_core.datatypes import RequestParameters  # lazy, see load_specs

        parts = urlsplit(url)
        path = parts.path.rstrip("/") or "/"
        request = _SpecRequest(
            host_url=SERVER,
            path=path,
            method=method.lower(),
            body=body or None,
            content_type=_content_type(headers),
            parameters=RequestParameters(
                query=_query_multidict(query, parts.query), header=headers
            ),
        )
        return self._find(method, path), request

    def validate(
        self,
        method: str,
        url: str,
        query: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> list[str]:
        """Human-readable problems with this request; [] when it matches its operation."""
        operation, request = self._request(method, url, query, Headers(headers or {}), body)
        label = f"{method.upper()} {request.path}"
        if operation is None:
            return [f"no operation {label} in the HubSpot specs"]
        errors = self._specs.apps[operation.spec].iter_request_errors(request)
        return [f"{label}: {line}" for error in errors for line in _describe(error)]

    def validate_response(
        self,
        method: str,
        url: str,
        status: int,
        body: bytes | None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | str | None = None,
    ) -> list[str]:
        """Problems with an answer to this request (used to keep the fake honest)."""
        operation, request = self._request(method, url, query, Headers(), b"")
        label = f"{method.upper()} {request.path} -> {status}"
        if operation is None:
            return [f"no operation {method.upper()} {request.path} in the HubSpot specs"]
        answer_headers = Headers(headers or {})
        response = _SpecResponse(status, body, answer_headers, _content_type(answer_headers))
        app = self._specs.apps[operation.spec]
        errors = app.iter_response_errors(request, response)
        return [f"{label}: {line}" for error in errors for line in _describe(error)]
