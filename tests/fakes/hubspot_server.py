"""A stateful fake of the HubSpot API on loopback, for contract tests and benchmarks.

hubspot-api-client sends through urllib3, which `responses` never sees (reference/hubspot.md
section 8), so the adapter is pointed at this real HTTP server instead. It answers in HubSpot's
shapes (HubSpot's specs, tests/fixtures/hubspot), records every request with the problems
SpecValidator finds in it (when the vendor specs are present: tests/specs_folder.py), and can be
told to throttle, fail or stall. Run it alone for a benchmark:

    python -m tests.fakes.hubspot_server --port 8123 --rate-limit 100/10
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fnmatch
import itertools
import json
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.fakes.openapi import SpecValidator
from tests.specs_folder import vendor_specs_present

Json = dict[str, Any]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hubspot"
# https://developers.hubspot.com/docs/api-reference/crm-objects/guide: 100 inputs per batch call.
BATCH_LIMIT = 100
# https://developers.hubspot.com/docs/api-reference/search/guide: 200 a page, 5 groups, 25 filters.
SEARCH_PAGE_LIMIT = 200
SEARCH_MAX_GROUPS = 5
SEARCH_MAX_FILTERS = 25
DAILY_LIMIT = 250_000
DEFAULT_BURST = (100, 10.0)
TEST_TOKEN = "test-token"
OBJECT_TYPES = {
    **{name: name for name in ("companies", "contacts", "tasks", "notes")},
    "company": "companies",
    "0-2": "companies",
    "contact": "contacts",
    "0-1": "contacts",
    "task": "tasks",
    "0-27": "tasks",
    "note": "notes",
    "0-46": "notes",
}
LABELS = {"companies": "COMPANY", "contacts": "CONTACT", "tasks": "TASK", "notes": "NOTE"}
CREATED = {"companies": "createdate", "contacts": "createdate"}
MODIFIED = {"contacts": "lastmodifieddate"}
DEFAULT_SHOWN = {
    "companies": ("name", "domain"),
    "contacts": ("email", "firstname", "lastname"),
    "tasks": ("hs_task_subject", "hs_task_status", "hs_timestamp"),
    "notes": ("hs_note_body", "hs_timestamp"),
}
# HUBSPOT_DEFINED type ids by the direction from the record being created (reference 2.5).
ASSOCIATION_TYPES = {
    "tasks": {204: "contacts", 192: "companies"},
    "notes": {202: "contacts", 190: "companies"},
    "contacts": {1: "companies", 279: "companies", 203: "tasks", 201: "notes"},
    "companies": {2: "contacts", 280: "contacts", 191: "tasks", 189: "notes"},
}
# The contact-company types each side sees of one association (v4 associations guide).
INVERSE_TYPES = {1: 2, 2: 1, 279: 280, 280: 279}
HUBSPOT_LABELS = {1: "Primary", 2: "Primary"}
# https://developers.hubspot.com/docs/api-reference/crm-associations-v4/guide: 500 a page.
ASSOCIATIONS_PAGE_LIMIT = 500
SEQUENCE_SCOPES = ["automation.sequences.enrollments.write", "automation.sequences.read"]
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
NOT_FOUND_MESSAGE = "Object not found.  objectId are usually numeric."
# Categories for scripted failures given without a body (429 and 401 get HubSpot's own bodies).
STATUS_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "VALIDATION_ERROR",
    409: "CONFLICT",
    423: "LOCKED",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def created_name(object_type: str) -> str:
    return CREATED.get(object_type, "hs_createdate")


def modified_name(object_type: str) -> str:
    return MODIFIED.get(object_type, "hs_lastmodifieddate")


def error_body(message: str, category: str, **extra: Any) -> Json:
    """HubSpot's error envelope (reference/hubspot.md 5.2)."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def rate_limit_body(policy: Literal["TEN_SECONDLY_ROLLING", "DAILY"]) -> Json:
    """The 429 body of tests/fixtures/hubspot/error_rate_limit__daily.json, for either policy."""
    return {
        "status": "error",
        "message": f"You have reached your {policy.lower()} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }


def search_limit_body() -> Json:
    return {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
    }


def missing_scopes_body(scopes: list[str]) -> Json:
    """tests/fixtures/hubspot/error_missing_scopes.json with other scopes."""
    body = json.loads((FIXTURES / "error_missing_scopes.json").read_text())
    body["correlationId"] = str(uuid.uuid4())
    body["errors"][0]["context"]["requiredGranularScopes"] = scopes
    return body  # type: ignore[no-any-return]  # a JSON object read from a fixture


def property_errors_body(names: list[str], code: str, text: str) -> Json:
    """The shape of tests/fixtures/hubspot/error_validation__unknown_property.json."""
    details = [
        {
            "isValid": False,
            "message": text.format(n),
            "error": code,
            "name": n,
            "localizedErrorMessage": text.format(n),
            "portalId": 1,
        }
        for n in names
    ]
    errors = [
        {"message": text.format(n), "code": code, "context": {"propertyName": [n]}} for n in names
    ]
    message = "Property values were not valid: " + json.dumps(details, separators=(",", ":"))
    return error_body(message, "VALIDATION_ERROR", errors=errors)


def as_string(value: Any) -> str:
    """HubSpot keeps every property value as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def id_key(record_id: str) -> tuple[int, int | str]:
    return (0, int(record_id)) if record_id.isdigit() else (1, record_id)


def definition(name: str, type_: str, field_type: str, group: str, **extra: Any) -> Json:
    """A full `Property` as GET /crm/v3/properties answers it."""
    stamp = "2019-10-30T03:30:17.883Z"
    return {
        "name": name,
        "label": extra.pop("label", name.replace("_", " ").title()),
        "type": type_,
        "fieldType": field_type,
        "description": "",
        "groupName": group,
        "options": [],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": False,
        "hidden": False,
        "hubspotDefined": True,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": True,
            "readOnlyValue": False,
        },
        "formField": False,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
        **extra,
    }


# A few real HubSpot properties per type, as name:type:fieldType (enough for strict_properties).
BUILT_IN_PROPERTIES = {
    "companies": "name:string:text domain:string:text",
    "contacts": "email:string:text firstname:string:text lastname:string:text "
    "jobtitle:string:text company:string:text",
    "tasks": "hs_timestamp:datetime:date hs_task_subject:string:text hs_task_body:string:html "
    "hs_task_status:enumeration:select hs_task_priority:enumeration:select "
    "hs_task_type:enumeration:select",
    "notes": "hs_timestamp:datetime:date hs_note_body:string:html",
}
BUILT_IN_OPTIONS = {
    "hs_task_status": "NOT_STARTED IN_PROGRESS WAITING COMPLETED DEFERRED",
    "hs_task_priority": "NONE LOW MEDIUM HIGH",
    "hs_task_type": "CALL EMAIL TODO",
}


def default_definitions() -> dict[str, dict[str, Json]]:
    """The built-in properties, plus the system ones every object type has."""
    result: dict[str, dict[str, Json]] = {}
    for object_type, table in BUILT_IN_PROPERTIES.items():
        group = f"{LABELS[object_type].lower()}information"
        system = (
            f"hs_object_id:number:number {created_name(object_type)}:datetime:date "
            f"{modified_name(object_type)}:datetime:date"
        )
        found = result.setdefault(object_type, {})
        for row in f"{table} {system}".split():
            name, type_, field_type = row.split(":")
            options = BUILT_IN_OPTIONS.get(name, "").split()
            found[name] = definition(
                name,
                type_,
                field_type,
                group,
                options=[
                    {"label": v.title(), "value": v, "hidden": False, "displayOrder": i}
                    for i, v in enumerate(options)
                ],
            )
        found["hubspot_owner_id"] = definition(
            "hubspot_owner_id",
            "enumeration",
            "select",
            group,
            externalOptions=True,
            referencedObjectType="OWNER",
        )
    return result


def default_groups() -> dict[str, dict[str, Json]]:
    groups = {}
    for object_type, label in LABELS.items():
        name = f"{label.lower()}information"
        groups[object_type] = {
            name: {
                "name": name,
                "label": f"{label.title()} information",
                "displayOrder": -1,
                "archived": False,
            }
        }
    return groups


SCRIPTED_BODIES: dict[int, Callable[[], Json]] = {
    429: lambda: rate_limit_body("TEN_SECONDLY_ROLLING"),
    401: lambda: error_body(AUTH_MESSAGE, "INVALID_AUTHENTICATION"),
}


def _tokens(text: str) -> list[str]:
    return [text, *(t for t in re.split(r"[\s,;:/()]+", text) if t)]


def _compare(actual: str, expected: Any) -> int:
    a, b = actual.lower(), as_string(expected).lower()
    try:
        x, y = float(a), float(b)
    except ValueError:
        return (a > b) - (a < b)
    return (x > y) - (x < y)


def filter_matches(properties: Mapping[str, str], spec: Mapping[str, Any]) -> bool:
    """One search filter (reference/hubspot.md 2.4); strings compare case-insensitively."""
    operator = spec.get("operator")
    actual = properties.get(str(spec.get("propertyName")))
    present = actual not in (None, "")
    if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return present == (operator == "HAS_PROPERTY")
    if actual is None or actual == "":
        return operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
    value, values = spec.get("value"), spec.get("values") or []
    checks: dict[str, Callable[[], bool]] = {
        "EQ": lambda: _compare(actual, value) == 0,
        "NEQ": lambda: _compare(actual, value) != 0,
        "IN": lambda: any(_compare(actual, v) == 0 for v in values),
        "NOT_IN": lambda: all(_compare(actual, v) != 0 for v in values),
        "GT": lambda: _compare(actual, value) > 0,
        "GTE": lambda: _compare(actual, value) >= 0,
        "LT": lambda: _compare(actual, value) < 0,
        "LTE": lambda: _compare(actual, value) <= 0,
        "BETWEEN": lambda: _compare(actual, value) >= 0 >= _compare(actual, spec.get("highValue")),
        "CONTAINS_TOKEN": lambda: any(
            fnmatch.fnmatchcase(t.lower(), as_string(value).lower()) for t in _tokens(actual)
        ),
    }
    if operator == "NOT_CONTAINS_TOKEN":
        return not checks["CONTAINS_TOKEN"]()
    return checks[str(operator)]() if operator in checks else False


@dataclass
class RecordedRequest:
    """One request as the fake received it, with what the specs say about it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any
    body: bytes
    spec_problems: list[str]
    arrived: float = 0.0
    status: int = 0
    response: Any = None


@dataclass
class _Script:
    method: str
    path: re.Pattern[str]
    times: int
    status: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class Reply(Exception):  # noqa: N818 - a control-flow answer, not an error of the fake
    """Raised by a handler to answer at once (errors, mostly)."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, dict(headers or {})


def _fail(status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> Reply:
    return Reply(status, error_body(message, category, **extra))


ROUTES = Map(
    [
        Rule("/crm/v3/objects/<otype>/batch/read", methods=["POST"], endpoint="batch_read"),
        Rule("/crm/v3/objects/<otype>/batch/update", methods=["POST"], endpoint="batch_update"),
        Rule("/crm/v3/objects/<otype>/batch/upsert", methods=["POST"], endpoint="batch_upsert"),
        Rule("/crm/v3/objects/<otype>/batch/create", methods=["POST"], endpoint="batch_create"),
        Rule("/crm/v3/objects/<otype>/search", methods=["POST"], endpoint="search"),
        Rule("/crm/v3/objects/<otype>", methods=["POST"], endpoint="create"),
        Rule("/crm/v3/objects/<otype>/<oid>", methods=["GET"], endpoint="get_object"),
        Rule("/crm/v3/objects/<otype>/<oid>", methods=["PATCH"], endpoint="update_object"),
        Rule(
            "/crm/v4/objects/<otype>/<oid>/associations/<to_type>",
            methods=["GET"],
            endpoint="associations_page",
        ),
        Rule("/crm/v3/owners/", methods=["GET"], endpoint="owners", strict_slashes=False),
        Rule("/crm/v3/owners/<owner_id>", methods=["GET"], endpoint="owner"),
        Rule("/crm/v3/properties/<otype>", methods=["GET"], endpoint="properties"),
        Rule("/crm/v3/properties/<otype>", methods=["POST"], endpoint="create_property"),
        Rule("/crm/v3/properties/<otype>/groups", methods=["GET"], endpoint="groups"),
        Rule("/crm/v3/properties/<otype>/groups", methods=["POST"], endpoint="create_group"),
        Rule("/crm/v3/properties/<otype>/groups/<name>", methods=["GET"], endpoint="group"),
        Rule("/crm/v3/properties/<otype>/<name>", methods=["GET"], endpoint="property"),
        Rule("/automation/v4/sequences/enrollments", methods=["POST"], endpoint="enroll"),
        Rule("/oauth/v1/token", methods=["POST"], endpoint="token"),
    ]
)


class _QuietHandler(WSGIRequestHandler):
    """No access log: a benchmark sends tens of thousands of requests."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class FakeHubSpot:
    """HubSpot's CRM, owners, properties, sequences and OAuth endpoints, in memory."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = TEST_TOKEN,
        rate_limit: tuple[int, float] | None = None,
        validator: SpecValidator | None = None,
        validate: bool = True,
    ) -> None:
        self.host, self.port = host, port
        self.token = token
        self.refresh_token = "test-refresh-token"
        self.rate_limit = rate_limit
        self.daily_limit = DAILY_LIMIT
        self.search_per_second: int | None = None
        self.batch_read_missing: Literal["omit", "207"] = "omit"
        self.strict_properties = False
        # Refuse creates associated with records the portal does not hold (a deleted company).
        self.strict_associations = False
        self.association_labels: dict[int, str] = {}  # USER_DEFINED type id -> label
        self.sequences_access = True
        checked = validate and vendor_specs_present()
        self.validator = validator or (SpecValidator() if checked else None)
        self.companies: dict[str, dict[str, str]] = {}
        self.contacts: dict[str, dict[str, str]] = {}
        self.tasks: dict[str, dict[str, str]] = {}
        self.notes: dict[str, dict[str, str]] = {}
        self.associations: dict[str, dict[str, list[Json]]] = {t: {} for t in LABELS}
        self.owners: list[Json] = []
        self.properties = default_definitions()
        self.groups = default_groups()
        self.unique_properties: dict[str, set[str]] = {t: set() for t in LABELS}
        self.unique_properties["contacts"].add("email")
        self.enrollments: list[Json] = []
        self.requests: list[RecordedRequest] = []
        self.server_errors: list[str] = []
        self.throttled = 0
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._burst: collections.deque[float] = collections.deque()
        self._searches: collections.deque[float] = collections.deque()
        self._daily = 0
        self._failures: list[_Script] = []
        self._delays: list[_Script] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeHubSpot:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _make_server(self) -> BaseWSGIServer:
        server = make_server(
            self.host, self.port, self.wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.port = server.server_port
        return server

    def start(self) -> None:
        """Serve in a background thread until stop()."""
        self._stop.clear()
        self._server = self._make_server()
        server = self._server
        # A short poll keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(target=lambda: server.serve_forever(0.02), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wake delayed answers, let in-flight requests finish, then close the socket."""
        self._stop.set()
        with self._lock:
            self._idle.wait_for(lambda: self._busy == 0, timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def serve_forever(self, announce: Callable[[str], None] | None = None) -> None:
        """Serve in this thread (the process mode) until interrupted; announce the base URL."""
        self._server = self._make_server()
        if announce is not None:
            announce(self.base_url)
        try:
            self._server.serve_forever()
        finally:
            self._stop.set()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- seeding and scripting -------------------------------------------------------------------

    def _store(self, object_type: str) -> dict[str, dict[str, str]]:
        return getattr(self, object_type)  # type: ignore[no-any-return]  # one of four dicts

    def _new_id(self, object_type: str) -> str:
        store = self._store(object_type)
        return next(i for i in map(str, self._ids) if i not in store)

    def add_record(
        self, object_type: str, properties: Mapping[str, Any], record_id: str | None = None
    ) -> str:
        """Store a record with HubSpot's system properties; returns its id."""
        with self._lock:
            rid = record_id or self._new_id(object_type)
            stamp = now_iso()
            record = {k: as_string(v) for k, v in properties.items()}
            if object_type == "contacts" and "email" in record:
                record["email"] = record["email"].lower()  # as HubSpot stores it
            record |= {"hs_object_id": rid}
            record.setdefault(created_name(object_type), stamp)
            record.setdefault(modified_name(object_type), stamp)
            self._store(object_type)[rid] = record
            return rid

    def add_company(self, properties: Mapping[str, Any], record_id: str | None = None) -> str:
        return self.add_record("companies", properties, record_id)

    def add_contact(self, properties: Mapping[str, Any], record_id: str | None = None) -> str:
        return self.add_record("contacts", properties, record_id)

    def add_owner(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        owner_id: str | None = None,
        user_id: int | None = None,
    ) -> Json:
        """An owner; `id` goes in hubspot_owner_id, `userId` in the sequences userId."""
        with self._lock:
            number = next(self._ids)
            owner = {
                "id": owner_id or str(number),
                "userId": user_id or number + 500_000,
                "email": email,
                "firstName": first_name,
                "lastName": last_name,
            }
            self.owners.append(owner)
            return owner

    def associate(
        self, company_id: str, contact_id: str, label: str | None = None, primary: bool = True
    ) -> None:
        """Associate a contact with a company: HubSpot's primary (or unlabeled) company type,
        plus a USER_DEFINED label such as "Primary contact" when given."""
        with self._lock:
            types = [
                {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": 1 if primary else 279,
                }
            ]
            if label is not None:
                type_id = next(
                    (i for i, known in self.association_labels.items() if known == label),
                    None,
                ) or 100 + 2 * len(self.association_labels)
                self.association_labels[type_id] = label
                types.append({"associationCategory": "USER_DEFINED", "associationTypeId": type_id})
            links = self.associations["contacts"].setdefault(contact_id, [])
            links.append({"to": {"id": company_id}, "types": types, "toType": "companies"})

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with this status (before anything else)."""
        script = _Script(
            method.upper(), re.compile(path_regex), times, status, body, dict(headers or {})
        )
        with self._lock:
            self._failures.append(script)

    def delay_next(self, path_regex: str, seconds: float, times: int = 1) -> None:
        """Hold the next `times` matching requests this long before answering."""
        with self._lock:
            self._delays.append(_Script("*", re.compile(path_regex), times, seconds=seconds))

    # -- what tests and benchmarks read ----------------------------------------------------------

    def spec_problems(self) -> list[str]:
        with self._lock:
            return [p for r in self.requests for p in r.spec_problems]

    def max_requests_in_any_window(self, window_seconds: float) -> int:
        """Most non-search requests that arrived within any `window_seconds` span."""
        with self._lock:
            times = sorted(r.arrived for r in self.requests if not _is_search(r.path))
        best, start = 0, 0
        for end, arrived in enumerate(times):
            while arrived - times[start] >= window_seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    def stats(self, window_seconds: float) -> Json:
        return {
            "requests": len(self.requests),
            "throttled": self.throttled,
            "max_in_window": self.max_requests_in_any_window(window_seconds),
            "spec_problems": self.spec_problems(),
            "server_errors": list(self.server_errors),
        }

    # -- the WSGI app ----------------------------------------------------------------------------

    def wsgi(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == "/__fake__/stats":
            window = float(request.args.get("window", "10"))
            return Response(json.dumps(self.stats(window)), 200, mimetype="application/json")(
                environ, start_response
            )
        arrived = time.monotonic()
        with self._lock:
            self._busy += 1
        try:
            record = self._record(request, arrived)
            delay = self._take(self._delays, record)
            if delay is not None:
                self._stop.wait(delay.seconds)
            with self._lock:
                response = self._answer(request, record)
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()
        return response(environ, start_response)

    def _record(self, request: Request, arrived: float) -> RecordedRequest:
        raw = request.get_data()
        try:
            parsed = json.loads(raw) if raw and request.mimetype == "application/json" else None
        except ValueError:
            parsed = None
        headers = dict(request.headers)
        query = request.args.to_dict(flat=False)
        with self._lock:
            problems = (
                self.validator.validate(request.method, request.path, query, headers, raw)
                if self.validator
                else []
            )
            record = RecordedRequest(
                request.method, request.path, query, headers, parsed, raw, problems, arrived
            )
            self.requests.append(record)
        return record

    def _take(self, scripts: list[_Script], record: RecordedRequest) -> _Script | None:
        with self._lock:
            for script in scripts:
                if script.method in ("*", record.method) and script.path.search(record.path):
                    script.times -= 1
                    if script.times <= 0:
                        scripts.remove(script)
                    return script
        return None

    def _answer(self, request: Request, record: RecordedRequest) -> Response:
        search = _is_search(request.path)
        headers: dict[str, str] = {"X-HubSpot-Correlation-Id": str(uuid.uuid4())}
        try:
            self._gate(request, record, search)
            headers |= {} if search else self._limit_headers()
            status, body = self._dispatch(request)
        except Reply as reply:
            status, body = reply.status, reply.body
            headers |= reply.headers
        except Exception:  # noqa: BLE001 - a bug in the fake answers 500 and is kept for the test
            self.server_errors.append(traceback.format_exc())
            status, body = 500, error_body("internal error", "INTERNAL_ERROR")
        record.status, record.response = status, body
        if isinstance(body, dict | list):
            return Response(json.dumps(body), status, headers, mimetype="application/json")
        mimetype = None if "Content-Type" in headers else "text/plain"
        return Response(body or b"", status, headers, mimetype=mimetype)

    def _gate(self, request: Request, record: RecordedRequest, search: bool) -> None:
        """Scripted failures, then auth, then the rate limits."""
        script = self._take(self._failures, record)
        if script is not None:
            raise Reply(script.status, self._scripted_body(script), script.headers)
        bearer = request.headers.get("Authorization", "")
        token_call = request.path == "/oauth/v1/token"
        if self.token is not None and not token_call and bearer != f"Bearer {self.token}":
            raise _fail(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")
        now = time.monotonic()
        if search:
            self._check_search_rate(now)
        else:
            self._check_burst(now)

    def _scripted_body(self, script: _Script) -> Any:
        if script.body is not None:
            return script.body
        if script.status in SCRIPTED_BODIES:
            return SCRIPTED_BODIES[script.status]()
        category = STATUS_CATEGORIES.get(script.status, "INTERNAL_ERROR")
        return error_body(f"scripted failure {script.status}", category)

    def _check_search_rate(self, now: float) -> None:
        if self.search_per_second is None:
            return
        while self._searches and now - self._searches[0] >= 1.0:
            self._searches.popleft()
        if len(self._searches) >= self.search_per_second:
            self.throttled += 1
            raise Reply(429, search_limit_body())
        self._searches.append(now)

    def _check_burst(self, now: float) -> None:
        if self._daily >= self.daily_limit:
            self.throttled += 1
            raise Reply(429, rate_limit_body("DAILY"), self._limit_headers())
        if self.rate_limit is not None:
            limit, window = self.rate_limit
            while self._burst and now - self._burst[0] >= window:
                self._burst.popleft()
            if len(self._burst) >= limit:
                self.throttled += 1
                raise Reply(429, rate_limit_body("TEN_SECONDLY_ROLLING"), self._limit_headers())
        self._burst.append(now)
        self._daily += 1

    def _limit_headers(self) -> dict[str, str]:
        limit, window = self.rate_limit or DEFAULT_BURST
        return {
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(max(limit - len(self._burst), 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self._daily, 0)),
        }

    def _dispatch(self, request: Request) -> tuple[int, Any]:
        try:
            endpoint, args = ROUTES.bind("api.hubapi.com").match(request.path, request.method)
        except NotFound:
            message = f"Unable to route {request.method} {request.path}"
            raise _fail(404, message, "OBJECT_NOT_FOUND") from None
        except MethodNotAllowed:
            message = f"HTTP method {request.method} is not supported by {request.path}"
            raise _fail(405, message) from None
        if "otype" in args:
            raw_type = args.pop("otype")
            if raw_type not in OBJECT_TYPES:
                raise _fail(
                    404, f"Unable to infer object type from: {raw_type}", "OBJECT_NOT_FOUND"
                )
            args["object_type"] = OBJECT_TYPES[raw_type]
        handler: Callable[..., tuple[int, Any]] = getattr(self, f"_do_{endpoint}")
        return handler(request, **args)

    # -- records ---------------------------------------------------------------------------------

    def _public(
        self, object_type: str, rid: str, shown: Iterable[str] | None, everything: bool = False
    ) -> Json:
        """A SimplePublicObject: requested (or default) properties that have a value."""
        record = self._store(object_type)[rid]
        names = set(DEFAULT_SHOWN[object_type] if shown is None else shown)
        names |= {"hs_object_id", created_name(object_type), modified_name(object_type)}
        properties = {k: v for k, v in record.items() if everything or k in names}
        return {
            "id": rid,
            "properties": properties,
            "createdAt": record.get(created_name(object_type), now_iso()),
            "updatedAt": record.get(modified_name(object_type), now_iso()),
            "archived": False,
        }

    def _unique(self, object_type: str, id_property: str | None) -> None:
        unique = self.unique_properties.setdefault(object_type, set())
        if id_property and id_property not in unique and id_property != "hs_object_id":
            message = (
                f"{id_property} is not a unique identifier property of {object_type}; "
                "idProperty needs a property created with hasUniqueValue"
            )
            raise _fail(400, message)

    def _index(self, object_type: str, id_property: str | None) -> dict[str, str]:
        store = self._store(object_type)
        if not id_property or id_property == "hs_object_id":
            return {rid: rid for rid in store}
        fold = str.lower if id_property == "email" else str
        return {fold(p[id_property]): rid for rid, p in store.items() if p.get(id_property)}

    def _lookup(self, index: dict[str, str], id_property: str | None, value: Any) -> str | None:
        key = as_string(value)
        return index.get(key.lower() if id_property == "email" else key)

    def _unknown_properties(self, object_type: str, names: Iterable[str]) -> list[str]:
        if not self.strict_properties:
            return []
        return [n for n in names if n not in self.properties.get(object_type, {})]

    def _write(self, object_type: str, rid: str, properties: Mapping[str, Any]) -> None:
        record = self._store(object_type)[rid]
        for name, value in properties.items():
            text = as_string(value)
            if text == "":
                record.pop(name, None)
            else:
                record[name] = text
        record[modified_name(object_type)] = now_iso()

    @staticmethod
    def _json(request: Request) -> Json:
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            raise _fail(400, "Invalid input JSON on line 1, column 1") from None
        if not isinstance(body, dict):
            raise _fail(400, "Invalid input JSON: expected an object")
        return body

    @staticmethod
    def _batch_inputs(body: Json) -> list[Json]:
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            message = f"Batch input exceeds the limit of {BATCH_LIMIT}: got {len(inputs)} inputs"
            raise _fail(400, message)
        return [i for i in inputs if isinstance(i, dict)]

    @staticmethod
    def _batch(results: list[Json], errors: list[Json]) -> tuple[int, Json]:
        stamp = now_iso()
        body: Json = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": stamp,
            "completedAt": stamp,
        }
        if not errors:
            return 200, body
        return 207, {**body, "numErrors": len(errors), "errors": errors}

    @staticmethod
    def _batch_error(category: str, message: str, ids: list[str], **extra: Any) -> Json:
        return {
            "status": "error",
            "category": category,
            "message": message,
            "context": {"ids": ids},
            "errors": [],
            "links": {},
            **extra,
        }

    def _not_found(self, object_type: str, ids: list[str]) -> Json:
        message = (
            f"Could not get some {LABELS[object_type]} objects, they may be deleted or "
            "not exist. Check that ids are valid."
        )
        return self._batch_error("OBJECT_NOT_FOUND", message, ids)

    def _do_batch_read(self, request: Request, object_type: str) -> tuple[int, Any]:
        body = self._json(request)
        id_property = body.get("idProperty")
        self._unique(object_type, id_property)
        index = self._index(object_type, id_property)
        found: dict[str, None] = {}
        missing: list[str] = []
        for item in self._batch_inputs(body):
            rid = self._lookup(index, id_property, item.get("id"))
            if rid is None:
                missing.append(as_string(item.get("id")))
            else:
                found[rid] = None
        # HubSpot does not keep input order: answer in descending id order so tests notice.
        ordered = sorted(found, key=id_key, reverse=True)
        results = [
            self._public(object_type, rid, body.get("properties") or None) for rid in ordered
        ]
        errors = [self._not_found(object_type, missing)] if missing else []
        return self._batch(results, errors if self.batch_read_missing == "207" else [])

    def _apply_batch(
        self, object_type: str, body: Json, upsert: bool
    ) -> tuple[list[Json], list[Json]]:
        inputs = self._batch_inputs(body)
        results: list[Json] = []
        errors: list[Json] = []
        missing: list[str] = []
        indexes: dict[str | None, dict[str, str]] = {}
        for item in inputs:
            id_property, properties = item.get("idProperty"), item.get("properties") or {}
            if upsert and not id_property:
                raise _fail(400, "idProperty is required for each upsert input")
            self._unique(object_type, id_property)
            if id_property not in indexes:
                indexes[id_property] = self._index(object_type, id_property)
            index = indexes[id_property]
            value = as_string(item.get("id"))
            rid = self._lookup(index, id_property, value)
            unknown = self._unknown_properties(object_type, properties)
            if unknown:
                error = property_errors_body(
                    unknown, "PROPERTY_DOESNT_EXIST", 'Property "{}" does not exist'
                )
                extra = {"context": {"ids": [value]}, "links": {}, "status": "error"}
                errors.append({k: error[k] for k in ("category", "message", "errors")} | extra)
                continue
            if rid is None and not upsert:
                missing.append(value)
                continue
            new = rid is None
            if rid is None:
                rid = self.add_record(object_type, {id_property: value})  # type: ignore[dict-item]
                index[value.lower() if id_property == "email" else value] = rid
            self._write(object_type, rid, properties)
            shown = [*properties, *([id_property] if id_property else [])]
            result = self._public(object_type, rid, shown)
            results.append(result | {"new": new} if upsert else result)
        if missing:
            errors.append(self._not_found(object_type, missing))
        return results, errors

    def _do_batch_update(self, request: Request, object_type: str) -> tuple[int, Any]:
        return self._batch(*self._apply_batch(object_type, self._json(request), upsert=False))

    def _do_batch_upsert(self, request: Request, object_type: str) -> tuple[int, Any]:
        return self._batch(*self._apply_batch(object_type, self._json(request), upsert=True))

    def _do_search(self, request: Request, object_type: str) -> tuple[int, Any]:
        body = self._json(request)
        limit, groups = body.get("limit", 10), body.get("filterGroups") or []
        if not isinstance(limit, int) or not 0 < limit <= SEARCH_PAGE_LIMIT:
            raise _fail(400, f"limit must be an integer from 1 to {SEARCH_PAGE_LIMIT}: {limit!r}")
        filters = sum(len(g.get("filters") or []) for g in groups)
        if len(groups) > SEARCH_MAX_GROUPS or filters > SEARCH_MAX_FILTERS:
            message = (
                f"Too many filters: {len(groups)} groups and {filters} filters; at most "
                f"{SEARCH_MAX_GROUPS} groups and {SEARCH_MAX_FILTERS} filters"
            )
            raise _fail(400, message)
        text = as_string(body.get("query")).lower()
        store = self._store(object_type)
        matches = [
            rid
            for rid, props in store.items()
            if (
                not groups
                or any(
                    all(filter_matches(props, f) for f in g.get("filters") or []) for g in groups
                )
            )
            and (not text or any(text in v.lower() for v in props.values()))
        ]
        matches.sort(key=id_key)
        for sort in reversed(body.get("sorts") or []):
            name = sort.get("propertyName") if isinstance(sort, dict) else sort.lstrip("-")
            descending = (
                sort.get("direction") == "DESCENDING"
                if isinstance(sort, dict)
                else sort.startswith("-")
            )
            matches.sort(key=lambda rid, n=name: _sort_key(store[rid].get(n)), reverse=descending)
        start = int(body.get("after") or 0)
        page = matches[start : start + limit]
        answer: Json = {
            "total": len(matches),
            "results": [
                self._public(object_type, rid, body.get("properties") or None) for rid in page
            ],
        }
        if start + limit < len(matches):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return 200, answer

    def _do_get_object(self, request: Request, object_type: str, oid: str) -> tuple[int, Any]:
        id_property = request.args.get("idProperty") or None
        self._unique(object_type, id_property)
        rid = self._lookup(self._index(object_type, id_property), id_property, oid)
        if rid is None:
            raise _fail(404, NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND", context={"id": [oid]})
        return 200, self._public(object_type, rid, _listed(request.args.getlist("properties")))

    def _do_update_object(self, request: Request, object_type: str, oid: str) -> tuple[int, Any]:
        id_property = request.args.get("idProperty") or None
        self._unique(object_type, id_property)
        rid = self._lookup(self._index(object_type, id_property), id_property, oid)
        if rid is None:
            raise _fail(404, NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND", context={"id": [oid]})
        properties = self._json(request).get("properties") or {}
        # Single-record update ignores properties that do not exist (reference 2.2).
        unknown = set(self._unknown_properties(object_type, properties))
        self._write(object_type, rid, {k: v for k, v in properties.items() if k not in unknown})
        return 200, self._public(object_type, rid, list(properties))

    def _associations(self, object_type: str, given: Any) -> list[Json]:
        allowed = ASSOCIATION_TYPES[object_type]
        kept: list[Json] = []
        for item in given or []:
            types = item.get("types") or []
            for spec in types:
                type_id, category = spec.get("associationTypeId"), spec.get("associationCategory")
                if category != "HUBSPOT_DEFINED" or type_id not in allowed:
                    choices = ", ".join(f"{i} ({t})" for i, t in allowed.items())
                    message = (
                        f"Invalid association type {category} {type_id} from "
                        f"{object_type}: expected HUBSPOT_DEFINED {choices}"
                    )
                    raise _fail(400, message)
            to = item.get("to") or {}
            target = as_string(to.get("id"))
            kinds = {allowed[spec.get("associationTypeId")] for spec in types}
            if self.strict_associations and any(target not in self._store(k) for k in kinds):
                # The fake's wording; HubSpot's exact message for this is not documented.
                message = f"One or more associations are invalid: {target} does not exist"
                raise _fail(400, message, context={"id": [target]})
            kept.append({"to": {"id": target}, "types": types})
        return kept

    def _do_associations_page(
        self, request: Request, object_type: str, oid: str, to_type: str
    ) -> tuple[int, Any]:
        """GET /crm/v4/objects/companies/{id}/associations/contacts, from either side's links."""
        to_type = OBJECT_TYPES.get(to_type, to_type)
        if oid not in self._store(object_type):
            raise _fail(404, NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND", context={"id": [oid]})
        found: dict[str, list[Json]] = {}
        for link in self.associations[object_type].get(oid, []):
            kinds = [
                ASSOCIATION_TYPES[object_type].get(t["associationTypeId"]) for t in link["types"]
            ]
            if to_type in kinds or link.get("toType") == to_type:
                found.setdefault(link["to"]["id"], []).extend(link["types"])
        for other, links in self.associations[to_type].items():
            for link in links:
                if link["to"]["id"] == oid and link.get("toType", object_type) == object_type:
                    found.setdefault(other, []).extend(self._inverse(link["types"]))
        ids = sorted(found, key=id_key)
        start = int(request.args.get("after") or 0)
        limit = min(
            int(request.args.get("limit") or ASSOCIATIONS_PAGE_LIMIT), ASSOCIATIONS_PAGE_LIMIT
        )
        answer: Json = {
            "results": [
                {"toObjectId": rid, "associationTypes": [self._labelled(t) for t in found[rid]]}
                for rid in ids[start : start + limit]
            ]
        }
        if start + limit < len(ids):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return 200, answer

    def _inverse(self, types: list[Json]) -> list[Json]:
        """The same association seen from the other record (user labels here are symmetric)."""
        return [
            spec
            | {
                "associationTypeId": INVERSE_TYPES.get(
                    spec["associationTypeId"], spec["associationTypeId"]
                )
            }
            for spec in types
        ]

    def _labelled(self, spec: Json) -> Json:
        type_id = spec["associationTypeId"]
        category = spec["associationCategory"]
        label = (
            self.association_labels.get(type_id)
            if category == "USER_DEFINED"
            else HUBSPOT_LABELS.get(type_id)
        )
        answer: Json = {"category": category, "typeId": type_id}
        return answer | ({"label": label} if label else {})

    def _do_create(self, request: Request, object_type: str) -> tuple[int, Any]:
        body = self._json(request)
        associations = self._check_create(object_type, body)
        rid = self.add_record(object_type, body.get("properties") or {})
        self.associations[object_type][rid] = associations
        return 201, self._public(object_type, rid, None, everything=True)

    def _do_batch_create(self, request: Request, object_type: str) -> tuple[int, Any]:
        """Every input is checked first. Without an objectWriteTraceId on each input one bad
        input refuses the whole batch; with them, a 207 names the refused ones by trace id and
        the rest are created (reference/hubspot.md 5.2). The created records carry no trace id,
        as in HubSpot's own example (fixtures/hubspot/batch-create-multi-status-207-response)."""
        inputs = self._batch_inputs(self._json(request))
        traced = bool(inputs) and all(item.get("objectWriteTraceId") for item in inputs)
        accepted: list[tuple[Json, list[Json]]] = []
        errors: list[Json] = []
        for item in inputs:
            try:
                accepted.append((item, self._check_create(object_type, item)))
            except Reply as refusal:
                if not traced:
                    raise
                trace = as_string(item["objectWriteTraceId"])
                error = refusal.body if isinstance(refusal.body, dict) else {}
                errors.append(
                    {
                        "status": "error",
                        "category": error.get("category", "VALIDATION_ERROR"),
                        "message": error.get("message", ""),
                        "context": {"objectWriteTraceId": [trace]},
                        "errors": error.get("errors", []),
                        "links": {},
                    }
                )
        results = []
        for item, associations in accepted:
            rid = self.add_record(object_type, item.get("properties") or {})
            self.associations[object_type][rid] = associations
            results.append(self._public(object_type, rid, None, everything=True))
        status, answer = self._batch(results, errors)
        return (201 if status == 200 else status), answer

    def _check_create(self, object_type: str, body: Json) -> list[Json]:
        """Refuse a create as HubSpot does (raises Reply); the associations to store."""
        properties = body.get("properties") or {}
        if object_type in ("tasks", "notes") and not as_string(properties.get("hs_timestamp")):
            raise Reply(
                400,
                property_errors_body(
                    ["hs_timestamp"], "REQUIRED_FIELD", 'Property "{}" is required'
                ),
            )
        unknown = self._unknown_properties(object_type, properties)
        if unknown:
            raise Reply(
                400,
                property_errors_body(
                    unknown, "PROPERTY_DOESNT_EXIST", 'Property "{}" does not exist'
                ),
            )
        associations = self._associations(object_type, body.get("associations"))
        email = as_string(properties.get("email")).lower()
        existing = (
            self._index(object_type, "email").get(email) if object_type == "contacts" else None
        )
        if email and existing:
            raise _fail(409, f"Contact already exists. Existing ID: {existing}", "CONFLICT")
        return associations

    # -- owners, properties, sequences, OAuth ----------------------------------------------------

    @staticmethod
    def _owner(owner: Json) -> Json:
        stamp = "2019-10-30T03:30:17.883Z"
        return {
            "id": str(owner["id"]),
            "email": owner.get("email", ""),
            "type": owner.get("type", "PERSON"),
            "firstName": owner.get("firstName", ""),
            "lastName": owner.get("lastName", ""),
            "userId": int(owner["userId"]),
            "userIdIncludingInactive": int(owner["userId"]),
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "teams": [],
        }

    def _do_owners(self, request: Request) -> tuple[int, Any]:
        email = (request.args.get("email") or "").lower()
        archived = request.args.get("archived", "false") == "true"
        limit = int(request.args.get("limit") or 100)
        start = int(request.args.get("after") or 0)
        owners = (
            []
            if archived
            else [o for o in self.owners if not email or o.get("email", "").lower() == email]
        )
        answer: Json = {"results": [self._owner(o) for o in owners[start : start + limit]]}
        if start + limit < len(owners):
            link = f"{self.base_url}/crm/v3/owners/?after={start + limit}"
            answer["paging"] = {"next": {"after": str(start + limit), "link": link}}
        return 200, answer

    def _do_owner(self, request: Request, owner_id: str) -> tuple[int, Any]:
        key = "userId" if request.args.get("idProperty") == "userId" else "id"
        for owner in self.owners:
            if str(owner[key]) == owner_id:
                return 200, self._owner(owner)
        raise _fail(404, NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND", context={"id": [owner_id]})

    def _do_properties(self, request: Request, object_type: str) -> tuple[int, Any]:
        return 200, {"results": list(self.properties.setdefault(object_type, {}).values())}

    def _do_property(self, request: Request, object_type: str, name: str) -> tuple[int, Any]:
        found = self.properties.get(object_type, {}).get(name)
        if found is None:
            message = f"Unable to find property {name} for object type {object_type}"
            raise _fail(404, message, "OBJECT_NOT_FOUND")
        return 200, found

    def _do_create_property(self, request: Request, object_type: str) -> tuple[int, Any]:
        body = self._json(request)
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            raise _fail(400, f"Missing required fields for a property: {', '.join(missing)}")
        existing = self.properties.setdefault(object_type, {})
        if body["name"] in existing:
            message = f"A property named '{body['name']}' already exists on {object_type}"
            raise _fail(409, message, "CONFLICT")
        created = definition(
            body["name"],
            body["type"],
            body["fieldType"],
            body["groupName"],
            **{
                k: v for k, v in body.items() if k not in ("name", "type", "fieldType", "groupName")
            },
        )
        created |= {"hubspotDefined": False, "createdAt": now_iso(), "updatedAt": now_iso()}
        created["modificationMetadata"]["readOnlyDefinition"] = False
        existing[body["name"]] = created
        if body.get("hasUniqueValue"):
            self.unique_properties.setdefault(object_type, set()).add(body["name"])
        return 201, created

    def _do_groups(self, request: Request, object_type: str) -> tuple[int, Any]:
        return 200, {"results": list(self.groups.setdefault(object_type, {}).values())}

    def _do_group(self, request: Request, object_type: str, name: str) -> tuple[int, Any]:
        found = self.groups.get(object_type, {}).get(name)
        if found is None:
            message = f"Unable to find property group {name} for object type {object_type}"
            raise _fail(404, message, "OBJECT_NOT_FOUND")
        return 200, found

    def _do_create_group(self, request: Request, object_type: str) -> tuple[int, Any]:
        body = self._json(request)
        if not body.get("name") or not body.get("label"):
            raise _fail(400, "Missing required fields for a property group: name, label")
        existing = self.groups.setdefault(object_type, {})
        if body["name"] in existing:
            message = f"A property group named '{body['name']}' already exists on {object_type}"
            raise _fail(409, message, "CONFLICT")
        group = {
            "name": body["name"],
            "label": body["label"],
            "displayOrder": body.get("displayOrder", -1),
            "archived": False,
        }
        existing[body["name"]] = group
        return 201, group

    def _do_enroll(self, request: Request) -> tuple[int, Any]:
        if not self.sequences_access:
            raise Reply(403, missing_scopes_body(SEQUENCE_SCOPES))
        user_id = request.args.get("userId")
        body = self._json(request)
        missing = [k for k in ("contactId", "sequenceId", "senderEmail") if not body.get(k)]
        if not user_id or missing:
            raise _fail(400, f"Missing required fields: {', '.join(missing or ['userId'])}")
        # Not documented: the fake insists on a known user (not an owner id) and their inbox.
        users = {str(o["userId"]): o for o in self.owners}
        if self.owners and user_id not in users:
            raise _fail(400, f"userId {user_id} is not a user of this account (owner id?)")
        if self.owners and users[user_id].get("email") != body["senderEmail"]:
            raise _fail(400, f"senderEmail {body['senderEmail']} is not an inbox of {user_id}")
        contact = self.contacts.get(str(body["contactId"]))
        if contact is None:
            raise _fail(400, f"contactId {body['contactId']} does not exist")
        stamp = now_iso()
        answer = {
            "id": str(next(self._ids)),
            "toEmail": contact.get("email", ""),
            "enrolledAt": stamp,
            "updatedAt": stamp,
        }
        self.enrollments.append({**body, "userId": user_id, **answer})
        return 200, answer

    def _do_token(self, request: Request) -> tuple[int, Any]:
        form = request.form
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != (
            self.refresh_token
        ):
            raise Reply(
                400,
                {
                    "status": "BAD_REFRESH_TOKEN",
                    "message": "missing or unknown refresh token",
                    "correlationId": str(uuid.uuid4()),
                },
            )
        return 200, {
            "token_type": "bearer",
            "refresh_token": self.refresh_token,
            "access_token": self.token or TEST_TOKEN,
            "expires_in": 1800,
            "token_use": "access_token",
        }


def _is_search(path: str) -> bool:
    return path.rstrip("/").endswith("/search")


def _listed(values: list[str]) -> list[str] | None:
    names = [n for v in values for n in v.split(",") if n]
    return names or None


def _sort_key(value: str | None) -> tuple[int, float, str]:
    if value is None:
        return (1, 0.0, "")
    try:
        return (0, float(value), "")
    except ValueError:
        return (0, 0.0, value.lower())


def main(argv: list[str] | None = None) -> None:
    """Serve the fake until SIGTERM or Ctrl-C (for benchmarks with several worker processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate-limit", help="burst limit as REQUESTS/SECONDS, e.g. 100/10")
    parser.add_argument("--search-per-second", type=int)
    parser.add_argument("--token", default=TEST_TOKEN)
    parser.add_argument(
        "--unique",
        action="append",
        default=[],
        help="TYPE.PROPERTY with unique values, e.g. companies.product_account_id",
    )
    parser.add_argument("--batch-read-missing", choices=["omit", "207"], default="omit")
    parser.add_argument("--no-validate", action="store_true", help="skip the OpenAPI checks")
    args = parser.parse_args(argv)
    rate = None
    if args.rate_limit:
        count, _, seconds = args.rate_limit.partition("/")
        rate = (int(count), float(seconds or 10))
    hub = FakeHubSpot(
        host=args.host,
        port=args.port,
        token=args.token,
        rate_limit=rate,
        validate=not args.no_validate,
    )
    hub.search_per_second = args.search_per_second
    hub.batch_read_missing = args.batch_read_missing
    for item in args.unique:
        object_type, _, name = item.partition(".")
        hub.unique_properties.setdefault(OBJECT_TYPES.get(object_type, object_type), set()).add(
            name
        )

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def announce(base_url: str) -> None:
        sys.stdout.write(f"FakeHubSpot listening on {base_url}\n")
        sys.stdout.flush()

    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        hub.serve_forever(announce)


if __name__ == "__main__":
    main()
