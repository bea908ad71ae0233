"""The fake HubSpot and the spec validator are only worth trusting if they are tested too.

The validator must pass HubSpot's own request samples and catch wrong types and unknown
operations; the fake must serve the real hubspot-api-client, answer in the specs' shapes, and
throttle, fail and stall on request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.companies import BatchReadInputSimplePublicObjectId
from hubspot.crm.contacts import PublicObjectSearchRequest
from hubspot.crm.objects.tasks import (
    AssociationSpec,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectInputForCreate,
)

from tests.fakes.hubspot_server import FakeHubSpot
from tests.fakes.openapi import SpecValidator
from tests.specs_folder import vendor_specs_present

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hubspot"
REPO = Path(__file__).resolve().parents[3]
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Request-body fixture -> the operation it is sent to.
REQUEST_FIXTURES = {
    "companies_batch_read_request__id_property.json": (
        "POST",
        "/crm/v3/objects/companies/batch/read",
    ),
    "contacts_batch_upsert_request.json": ("POST", "/crm/v3/objects/contacts/batch/upsert"),
    "task_create_request__two_contacts.json": ("POST", "/crm/v3/objects/tasks"),
    "task_create_request__company_and_contact.json": ("POST", "/crm/v3/objects/tasks"),
    "note_create_request__company_and_contact.json": ("POST", "/crm/v3/objects/notes"),
    "property_group_create_request.json": ("POST", "/crm/v3/properties/companies/groups"),
    "sequence_enrollment_request.json": ("POST", "/automation/v4/sequences/enrollments?userId=7"),
}
TASK = {"hs_timestamp": "2025-01-31T17:00:00Z", "hs_task_subject": "Call back"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def validator() -> SpecValidator | None:
    return SpecValidator() if vendor_specs_present() else None


@pytest.fixture
def hub(validator: SpecValidator | None) -> Iterator[FakeHubSpot]:
    """A running fake; afterwards, every answer it gave must fit the spec of its operation."""
    with FakeHubSpot(validator=validator) as fake:
        yield fake
    assert fake.server_errors == []
    if validator is None:  # no specs to hold the answers to (tests/specs_folder.py)
        return
    for seen in fake.requests:
        # 429 bodies carry errorType, not the category the spec's Error demands (HubSpot's own);
        # the token answer is oneOf two schemas that any full answer matches both of.
        skip = seen.status == 429 or seen.path == "/oauth/v1/token"
        if skip or validator.operation(seen.method, seen.path) is None:
            continue
        answer = json.dumps(seen.response).encode()
        headers = {"Content-Type": "application/json"}
        problems = validator.validate_response(
            seen.method, seen.path, seen.status, answer, headers, seen.query
        )
        assert problems == []


def client(hub: FakeHubSpot) -> HubSpot:
    # 12.0.0: `host` reaches every generated API's Configuration; `base_url` is what
    # api_request() reads.
    return HubSpot(access_token=TOKEN, host=hub.base_url, base_url=hub.base_url)


def call(hub: FakeHubSpot, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    kw.setdefault("headers", AUTH)
    timeout = kw.pop("timeout", 5)
    return requests.request(method, hub.base_url + path, json=body, timeout=timeout, **kw)


# -- SpecValidator ---------------------------------------------------------------------------


def test_every_request_fixture_is_checked() -> None:
    assert {p.name for p in FIXTURES.glob("*_request*.json")} == set(REQUEST_FIXTURES)


@pytest.mark.vendor_specs
@pytest.mark.parametrize("name", sorted(REQUEST_FIXTURES))
def test_hubspot_request_samples_validate_clean(validator: SpecValidator, name: str) -> None:
    method, url = REQUEST_FIXTURES[name]
    body = (FIXTURES / name).read_bytes()
    headers = {"Content-Type": "application/json"}
    assert validator.validate(method, "http://127.0.0.1:9" + url, None, headers, body) == []


@pytest.mark.vendor_specs
def test_the_most_specific_spec_serves_a_path(validator: SpecValidator) -> None:
    assert validator.operation("POST", "/crm/v3/objects/tasks") == (
        "crm/tasks/v3/tasks.json",
        "/crm/v3/objects/tasks",
    )
    assert validator.operation("POST", "/crm/v3/objects/deals/search") == (
        "crm/objects/v3/objects.json",
        "/crm/v3/objects/{objectType}/search",
    )
    assert validator.operation("GET", "/crm/v3/owners/") == (
        "crm/owners/v3/crmOwners.json",
        "/crm/v3/owners",
    )


def _task_with(**changes: Any) -> bytes:
    body = fixture("task_create_request__company_and_contact.json")
    body["associations"][0]["types"][0].update(changes)
    return json.dumps(body).encode()


@pytest.mark.vendor_specs
@pytest.mark.parametrize(
    ("method", "url", "body", "problem"),
    [
        (
            "POST",
            "/crm/v3/objects/tasks",
            _task_with(associationTypeId=[204]),
            "POST /crm/v3/objects/tasks: associations[0].types[0].associationTypeId: "
            "[204] is not of type 'integer'",
        ),
        (
            "POST",
            "/crm/v3/objects/tasks",
            _task_with(associationCategory="hubspot"),
            "POST /crm/v3/objects/tasks: associations[0].types[0].associationCategory: "
            "'hubspot' is not one of ['HUBSPOT_DEFINED', 'INTEGRATOR_DEFINED', 'USER_DEFINED', "
            "'WORK']",
        ),
        (
            "POST",
            "/crm/v3/objects/contacts/search",
            b'{"filterGroups": [], "limit": "1"}',
            "POST /crm/v3/objects/contacts/search: limit: '1' is not of type 'integer'",
        ),
        (
            "POST",
            "/crm/v3/objects/companies/batch/update",
            b'{"inputs": [{"id": "1", "properties": {"tier": 3}}]}',
            "POST /crm/v3/objects/companies/batch/update: inputs[0].properties.tier: "
            "3 is not of type 'string'",
        ),
        (
            "POST",
            "/automation/v4/sequences/enrollments",
            (FIXTURES / "sequence_enrollment_request.json").read_bytes(),
            "POST /automation/v4/sequences/enrollments: Missing required query parameter: userId",
        ),
        (
            "POST",
            "/crm/v3/objects/tasks",
            b"",
            "POST /crm/v3/objects/tasks: Missing required request body",
        ),
        ("POST", "/crm/v3/foo", b"{}", "no operation POST /crm/v3/foo in the HubSpot specs"),
        (
            "DELETE",
            "/automation/v4/sequences/enrollments",
            None,
            "no operation DELETE /automation/v4/sequences/enrollments in the HubSpot specs",
        ),
    ],
)
def test_wrong_requests_are_named(
    validator: SpecValidator, method: str, url: str, body: bytes | None, problem: str
) -> None:
    assert validator.validate(method, url, None, {}, body) == [problem]


@pytest.mark.vendor_specs
def test_unknown_fields_pass_unless_asked_for() -> None:
    body = b'{"filter_groups": [], "limit": 1}'
    assert SpecValidator().validate("POST", "/crm/v3/objects/contacts/search", None, {}, body) == []
    strict = SpecValidator(forbid_unknown_fields=True)
    assert strict.validate("POST", "/crm/v3/objects/contacts/search", None, {}, body) == [
        "POST /crm/v3/objects/contacts/search: (root): Additional properties are not allowed "
        "('filter_groups' was unexpected)"
    ]
    for name, (method, url) in REQUEST_FIXTURES.items():
        assert strict.validate(method, url, None, {}, (FIXTURES / name).read_bytes()) == []


# -- the real hubspot-api-client against the fake --------------------------------------------


def test_the_client_batch_reads_companies_by_a_unique_property(hub: FakeHubSpot) -> None:
    hub.unique_properties["companies"].add("product_account_id")
    first = hub.add_company({"name": "Acme", "product_account_id": "acct-1"})
    second = hub.add_company({"name": "Beta", "product_account_id": "acct-2", "tier": "gold"})
    body = BatchReadInputSimplePublicObjectId(
        id_property="product_account_id",
        inputs=[{"id": "acct-1"}, {"id": "acct-2"}, {"id": "acct-404"}],
        properties=["name", "product_account_id"],
        properties_with_history=[],
    )
    answer = client(hub).crm.companies.batch_api.read(batch_read_input_simple_public_object_id=body)
    assert [r.id for r in answer.results] == [second, first]  # not in input order
    assert answer.results[1].properties["product_account_id"] == "acct-1"
    assert "tier" not in answer.results[0].properties
    assert hub.spec_problems() == []


def test_the_client_creates_a_task_with_associations(hub: FakeHubSpot) -> None:
    contact = hub.add_contact({"email": "jane@acme.example"})
    company = hub.add_company({"name": "Acme"})
    associations = [
        PublicAssociationsForObject(
            to=PublicObjectId(id=to),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=i)],
        )
        for to, i in ((contact, 204), (company, 192))
    ]
    body = SimplePublicObjectInputForCreate(properties=TASK, associations=associations)
    task = client(hub).crm.objects.tasks.basic_api.create(
        simple_public_object_input_for_create=body
    )
    assert hub.tasks[task.id]["hs_task_subject"] == "Call back"
    assert task.properties["hs_object_id"] == task.id
    assert [a["to"]["id"] for a in hub.associations["tasks"][task.id]] == [contact, company]
    assert hub.requests[-1].json["associations"][0]["types"][0]["associationTypeId"] == 204
    assert hub.spec_problems() == []


def test_the_client_searches_contacts(hub: FakeHubSpot) -> None:
    jane = hub.add_contact({"email": "jane@acme.example", "firstname": "Jane"})
    hub.add_contact({"email": "joe@beta.example"})
    search = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "JANE@acme.example"}]}
        ],
        properties=["email"],
        limit=1,
    )
    answer = client(hub).crm.contacts.search_api.do_search(public_object_search_request=search)
    assert (answer.total, [r.id for r in answer.results]) == (1, [jane])
    assert "firstname" not in answer.results[0].properties
    assert hub.spec_problems() == []


def test_the_client_finds_a_contact_by_email_or_gets_404(hub: FakeHubSpot) -> None:
    jane = hub.add_contact({"email": "jane@acme.example"})
    contacts = client(hub).crm.contacts.basic_api
    assert contacts.get_by_id(contact_id="jane@acme.example", id_property="email").id == jane
    with pytest.raises(Exception, match="404") as caught:
        contacts.get_by_id(contact_id="nobody@acme.example", id_property="email")
    assert json.loads(caught.value.body)["category"] == "OBJECT_NOT_FOUND"  # type: ignore[attr-defined]
    assert hub.spec_problems() == []


def test_the_client_reads_owners_and_one_owner(hub: FakeHubSpot) -> None:
    owner = hub.add_owner("olive@acme.example", "Olive", "Owner")
    owners = client(hub).crm.owners.owners_api
    page = owners.get_page(email="olive@acme.example", limit=10)
    assert [(o.id, o.user_id) for o in page.results] == [(owner["id"], owner["userId"])]
    assert owners.get_by_id(owner_id=int(owner["id"]), id_property="id").email == owner["email"]
    assert hub.spec_problems() == []


# -- the fake's HubSpot behaviour ------------------------------------------------------------


def test_unknown_ids_in_batch_read_are_omitted_or_reported_as_207(hub: FakeHubSpot) -> None:
    known = hub.add_company({"name": "Acme"})
    body = {"inputs": [{"id": known}, {"id": "999"}], "properties": ["name"]}
    omitted = call(hub, "POST", "/crm/v3/objects/companies/batch/read", body)
    assert (omitted.status_code, len(omitted.json()["results"])) == (200, 1)
    hub.batch_read_missing = "207"
    reported = call(hub, "POST", "/crm/v3/objects/companies/batch/read", body).json()
    assert (reported["numErrors"], reported["errors"][0]["category"]) == (1, "OBJECT_NOT_FOUND")
    assert reported["errors"][0]["context"] == {"ids": ["999"]}


def test_batch_update_reports_unknown_records_and_properties_per_input(hub: FakeHubSpot) -> None:
    hub.strict_properties = True
    known = hub.add_company({"name": "Acme"})
    inputs = [
        {"id": known, "properties": {"name": "Acme Inc"}},
        {"id": "999", "properties": {"name": "Ghost"}},
        {"id": known, "properties": {"tier": "gold"}},
    ]
    answer = call(hub, "POST", "/crm/v3/objects/companies/batch/update", {"inputs": inputs})
    body = answer.json()
    assert (answer.status_code, [r["id"] for r in body["results"]]) == (207, [known])
    categories = {e["category"]: e for e in body["errors"]}
    assert categories["OBJECT_NOT_FOUND"]["context"] == {"ids": ["999"]}
    assert categories["VALIDATION_ERROR"]["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert 'Property \\"tier\\" does not exist' in categories["VALIDATION_ERROR"]["message"]
    assert hub.companies[known]["name"] == "Acme Inc"


def test_a_batch_of_more_than_100_is_refused(hub: FakeHubSpot) -> None:
    inputs = [{"id": str(i), "properties": {}} for i in range(101)]
    answer = call(hub, "POST", "/crm/v3/objects/companies/batch/update", {"inputs": inputs})
    assert (answer.status_code, answer.json()["category"]) == (400, "VALIDATION_ERROR")


def test_upsert_creates_and_updates_by_unique_property(hub: FakeHubSpot) -> None:
    hub.unique_properties["companies"].add("product_account_id")
    hub.add_company({"name": "Acme", "product_account_id": "acct-1"})
    inputs = [
        {"id": f"acct-{n}", "idProperty": "product_account_id", "properties": {"tier": "gold"}}
        for n in (1, 2)
    ]
    answer = call(hub, "POST", "/crm/v3/objects/companies/batch/upsert", {"inputs": inputs})
    flags = {r["properties"]["product_account_id"]: r["new"] for r in answer.json()["results"]}
    assert (answer.status_code, flags) == (200, {"acct-1": False, "acct-2": True})
    assert len(hub.companies) == 2


def test_id_property_must_be_unique(hub: FakeHubSpot) -> None:
    body = {"idProperty": "domain", "inputs": [{"id": "acme.example"}], "properties": []}
    answer = call(hub, "POST", "/crm/v3/objects/companies/batch/read", body)
    assert (answer.status_code, answer.json()["category"]) == (400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/crm/v3/objects/tasks",
            {"properties": {**TASK, "hs_timestamp": ""}},
            "Property values were not valid: ",
        ),
        (
            "/crm/v3/objects/tasks",
            {
                "properties": TASK,
                "associations": [
                    {
                        "to": {"id": "1"},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 203}
                        ],
                    }
                ],
            },
            "Invalid association type HUBSPOT_DEFINED 203 from tasks: expected HUBSPOT_DEFINED "
            "204 (contacts), 192 (companies)",
        ),
        (
            "/crm/v3/objects/notes",
            {
                "properties": {"hs_timestamp": "2025-01-31T17:00:00Z"},
                "associations": [
                    {
                        "to": {"id": "1"},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}
                        ],
                    }
                ],
            },
            "Invalid association type HUBSPOT_DEFINED 204 from notes: expected HUBSPOT_DEFINED "
            "202 (contacts), 190 (companies)",
        ),
    ],
)
def test_bad_task_and_note_creates_get_400(
    hub: FakeHubSpot, path: str, body: Any, message: str
) -> None:
    answer = call(hub, "POST", path, body)
    assert (answer.status_code, answer.json()["category"]) == (400, "VALIDATION_ERROR")
    assert answer.json()["message"].startswith(message)
    assert hub.tasks == hub.notes == {}


def test_a_note_is_created_from_the_fixture_and_a_task_patched(hub: FakeHubSpot) -> None:
    note = call(
        hub,
        "POST",
        "/crm/v3/objects/notes",
        fixture("note_create_request__company_and_contact.json"),
    )
    assert (note.status_code, note.json()["archived"]) == (201, False)
    task = call(
        hub, "POST", "/crm/v3/objects/tasks", fixture("task_create_request__two_contacts.json")
    ).json()
    patch = {"properties": {"hs_task_status": "COMPLETED", "hubspot_owner_id": "42"}}
    answer = call(hub, "PATCH", f"/crm/v3/objects/tasks/{task['id']}", patch)
    assert answer.json()["properties"]["hs_task_status"] == "COMPLETED"
    assert hub.tasks[task["id"]]["hubspot_owner_id"] == "42"
    assert hub.associations["tasks"][task["id"]][1]["to"] == {"id": "5302"}
    assert hub.spec_problems() == []


def test_search_filters_pages_and_caps_the_page_size(hub: FakeHubSpot) -> None:
    for n in range(5):
        hub.add_company({"name": f"Acme {n}", "domain": f"acme{n}.example", "tier": "gold"})
    hub.add_company({"name": "Beta"})
    body: dict[str, Any] = {
        "filterGroups": [{"filters": [{"propertyName": "tier", "operator": "HAS_PROPERTY"}]}],
        "properties": ["name"],
        "limit": 3,
    }
    first = call(hub, "POST", "/crm/v3/objects/companies/search", body).json()
    second = call(hub, "POST", "/crm/v3/objects/companies/search", body | {"after": "3"}).json()
    assert (first["total"], len(first["results"]), first["paging"]["next"]["after"]) == (5, 3, "3")
    assert (len(second["results"]), "paging" in second) == (2, False)
    token = {"propertyName": "name", "operator": "CONTAINS_TOKEN", "value": "bet*"}
    body = {"filterGroups": [{"filters": [token]}]}
    found = call(hub, "POST", "/crm/v3/objects/companies/search", body).json()
    assert [r["properties"]["name"] for r in found["results"]] == ["Beta"]
    too_big = call(hub, "POST", "/crm/v3/objects/companies/search", {"limit": 201})
    assert too_big.status_code == 400


def test_properties_and_groups_are_created_once(hub: FakeHubSpot) -> None:
    group = call(
        hub,
        "POST",
        "/crm/v3/properties/companies/groups",
        fixture("property_group_create_request.json"),
    )
    again = call(
        hub,
        "POST",
        "/crm/v3/properties/companies/groups",
        fixture("property_group_create_request.json"),
    )
    assert (group.status_code, again.status_code, again.json()["category"]) == (
        201,
        409,
        "CONFLICT",
    )
    prop = {
        "name": "product_account_id",
        "label": "Product account",
        "type": "string",
        "fieldType": "text",
        "groupName": "cs_playbooks",
        "hasUniqueValue": True,
    }
    assert call(hub, "POST", "/crm/v3/properties/companies", prop).status_code == 201
    assert call(hub, "POST", "/crm/v3/properties/companies", prop).status_code == 409
    read = call(hub, "GET", "/crm/v3/properties/companies/product_account_id").json()
    assert (read["hasUniqueValue"], "product_account_id" in hub.unique_properties["companies"]) == (
        True,
        True,
    )
    assert call(hub, "GET", "/crm/v3/properties/companies/nope").status_code == 404
    assert call(hub, "GET", "/crm/v3/properties/companies/groups/cs_playbooks").status_code == 200
    names = [p["name"] for p in call(hub, "GET", "/crm/v3/properties/tasks").json()["results"]]
    assert "hs_task_status" in names
    assert hub.spec_problems() == []


def test_sequence_enrollment_needs_access_and_the_owners_user_id(hub: FakeHubSpot) -> None:
    owner = hub.add_owner("olive@acme.example")
    contact = hub.add_contact({"email": "jane@acme.example"})
    body = {"contactId": contact, "sequenceId": "123", "senderEmail": owner["email"]}
    path = "/automation/v4/sequences/enrollments"
    by_owner_id = call(hub, "POST", path, body, params={"userId": owner["id"]})
    assert by_owner_id.status_code == 400
    enrolled = call(hub, "POST", path, body, params={"userId": owner["userId"]})
    assert (enrolled.status_code, enrolled.json()["toEmail"]) == (200, "jane@acme.example")
    assert hub.enrollments[0]["sequenceId"] == "123"
    hub.sequences_access = False
    refused = call(hub, "POST", path, body, params={"userId": owner["userId"]})
    context = refused.json()["errors"][0]["context"]
    assert (refused.status_code, refused.json()["category"]) == (403, "MISSING_SCOPES")
    assert "automation.sequences.enrollments.write" in context["requiredGranularScopes"]


def test_requests_without_the_token_and_to_unknown_paths_get_envelopes(hub: FakeHubSpot) -> None:
    anonymous = call(hub, "GET", "/crm/v3/owners/", headers={})
    assert (anonymous.status_code, anonymous.json()["category"]) == (401, "INVALID_AUTHENTICATION")
    unknown = call(hub, "POST", "/crm/v3/foo", {})
    assert unknown.status_code == 404
    assert set(unknown.json()) >= {"status", "message", "correlationId", "category"}


@pytest.mark.vendor_specs
def test_a_request_to_an_operation_the_specs_lack_is_recorded_as_a_problem(
    hub: FakeHubSpot,
) -> None:
    assert call(hub, "POST", "/crm/v3/foo", {}).status_code == 404
    assert hub.spec_problems() == ["no operation POST /crm/v3/foo in the HubSpot specs"]


def test_oauth_refresh_hands_out_the_token(hub: FakeHubSpot) -> None:
    form = {
        "grant_type": "refresh_token",
        "client_id": "c",
        "client_secret": "s",
        "refresh_token": hub.refresh_token,
    }
    answer = requests.post(hub.base_url + "/oauth/v1/token", data=form, timeout=5)
    assert (answer.status_code, answer.json()["access_token"]) == (200, TOKEN)
    bad = requests.post(
        hub.base_url + "/oauth/v1/token", data=form | {"refresh_token": "x"}, timeout=5
    )
    assert (bad.status_code, bad.json()["status"]) == (400, "BAD_REFRESH_TOKEN")
    assert hub.spec_problems() == []


# -- limits, scripted failures, delays -------------------------------------------------------


def test_the_burst_limit_answers_429_like_hubspot(hub: FakeHubSpot) -> None:
    hub.rate_limit = (2, 10)
    answers = [call(hub, "GET", "/crm/v3/owners/") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["X-HubSpot-RateLimit-Remaining"] == "1"
    assert answers[0].headers["X-HubSpot-RateLimit-Daily"] == "250000"
    body = answers[2].json()
    assert {k: body[k] for k in ("status", "message", "errorType", "policyName")} == {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    limited = answers[2].headers
    assert (limited["X-HubSpot-RateLimit-Max"], limited["X-HubSpot-RateLimit-Remaining"]) == (
        "2",
        "0",
    )
    assert limited["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert (hub.throttled, hub.max_requests_in_any_window(10)) == (1, 3)


def test_search_has_its_own_secondly_limit_and_no_limit_headers(hub: FakeHubSpot) -> None:
    hub.search_per_second = 1
    answers = [call(hub, "POST", "/crm/v3/objects/contacts/search", {}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].json()["message"] == "You have reached your secondly limit."
    assert not any(h.startswith("X-HubSpot-RateLimit") for a in answers for h in a.headers)
    assert hub.max_requests_in_any_window(10) == 0


def test_scripted_failures_come_first_and_run_out(hub: FakeHubSpot) -> None:
    hub.fail_next("GET", r"/owners", 429, headers={"Retry-After": "1"})
    refusal = fixture("error_validation__unknown_property.json")
    hub.fail_next("POST", r"/batch/update$", 400, body=refusal)
    hub.fail_next("*", r"/crm/", 503, times=2)
    limited = call(hub, "GET", "/crm/v3/owners/", headers={})
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    refused = call(hub, "POST", "/crm/v3/objects/companies/batch/update", {"inputs": []})
    assert refused.json() == refusal
    statuses = [call(hub, "GET", "/crm/v3/owners/").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_a_delayed_answer_times_the_client_out(hub: FakeHubSpot) -> None:
    hub.delay_next(r"/owners", 0.3)
    with pytest.raises(requests.Timeout):
        call(hub, "GET", "/crm/v3/owners/", timeout=0.05)
    assert call(hub, "GET", "/crm/v3/owners/").status_code == 200


def test_the_fake_runs_as_a_process_for_benchmarks() -> None:
    command = [
        sys.executable,
        "-m",
        "tests.fakes.hubspot_server",
        "--port",
        "0",
        "--rate-limit",
        "100/10",
        "--no-validate",
    ]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:  # noqa: S603 - our own module
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().split()[-1]
            owners = requests.get(base_url + "/crm/v3/owners/", headers=AUTH, timeout=5)
            stats = requests.get(base_url + "/__fake__/stats?window=10", timeout=5).json()
        finally:
            process.terminate()
    assert owners.headers["X-HubSpot-RateLimit-Max"] == "100"
    assert (stats["requests"], stats["max_in_window"], stats["throttled"]) == (1, 1, 0)
    assert process.returncode == 0


def test_a_batch_create_is_all_or_nothing_unless_every_input_has_a_trace_id(
    hub: FakeHubSpot,
) -> None:
    hub.strict_associations = True
    company = hub.add_company({"name": "Acme"})

    def task_input(to: str, trace: str | None) -> dict[str, Any]:
        types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}]
        item = {"properties": TASK, "associations": [{"to": {"id": to}, "types": types}]}
        return item | ({"objectWriteTraceId": trace} if trace else {})

    path = "/crm/v3/objects/tasks/batch/create"
    untraced = call(
        hub, "POST", path, {"inputs": [task_input(company, None), task_input("9", None)]}
    )
    assert (untraced.status_code, hub.tasks) == (400, {})

    traced = call(hub, "POST", path, {"inputs": [task_input(company, "a"), task_input("9", "b")]})
    assert traced.status_code == 207
    answer = traced.json()
    assert [r["properties"]["hs_task_subject"] for r in answer["results"]] == ["Call back"]
    assert "objectWriteTraceId" not in answer["results"][0]  # as in HubSpot's own example
    assert (answer["numErrors"], answer["errors"][0]["context"]) == (
        1,
        {"objectWriteTraceId": ["b"]},
    )
    assert list(hub.tasks) == [answer["results"][0]["id"]]

    clean = call(hub, "POST", path, {"inputs": [task_input(company, "c")]})
    assert clean.status_code == 201


def test_a_companys_contact_associations_are_read_from_either_side_with_labels(
    hub: FakeHubSpot,
) -> None:
    company = hub.add_company({"name": "Globex"})
    made = call(
        hub,
        "POST",
        "/crm/v3/objects/contacts",
        {
            "properties": {"email": "sam@globex.example"},
            "associations": [
                {
                    "to": {"id": company},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}],
                }
            ],
        },
    ).json()
    priya = hub.add_contact({"email": "priya@globex.example"})
    hub.associate(company, priya, label="Primary contact")

    answer = call(hub, "GET", f"/crm/v4/objects/companies/{company}/associations/contacts")
    assert answer.json() == {
        "results": [
            {
                "toObjectId": made["id"],
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 280}],
            },
            {
                "toObjectId": priya,
                "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": 2, "label": "Primary"},
                    {"category": "USER_DEFINED", "typeId": 100, "label": "Primary contact"},
                ],
            },
        ]
    }
    missing = call(hub, "GET", "/crm/v4/objects/companies/424242/associations/contacts")
    assert missing.status_code == 404
