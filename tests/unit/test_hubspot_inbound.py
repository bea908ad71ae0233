"""HubSpot webhook signatures (the published vectors and ours) and what each event means to us."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from integration.errors import SignatureError
from integration.signals.crm_changes import ChangeKind
from webhooks.hubspot import parse_events, to_change
from webhooks.hubspot_signature import signed_uri, verify_hubspot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hubspot"
VECTORS = json.loads((FIXTURES / "signature_vectors.json").read_text())
SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
BODY = "{'example_field':'example_value'}"
URI = "https://www.example.com/webhook_uri"
TS = 1693657560000


def v3_headers(signature: str, timestamp: int = TS) -> dict[str, str]:
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(timestamp)}


def test_the_published_v3_vector_verifies() -> None:
    headers = v3_headers("K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=")
    assert verify_hubspot(SECRET, "POST", URI, BODY, headers, TS + 1000, False) == "v3"


@pytest.mark.parametrize(
    ("version", "signature"),
    [
        ("v1", "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"),
        ("v2", "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"),
    ],
)
def test_published_legacy_vectors_verify_when_legacy_is_on(version: str, signature: str) -> None:
    headers = {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version}
    assert verify_hubspot(SECRET, "POST", URI, BODY, headers, 0, True) == version
    with pytest.raises(SignatureError, match="legacy v1/v2 signatures are turned off"):
        verify_hubspot(SECRET, "POST", URI, BODY, headers, 0, False)


def test_our_vectors_for_a_delivery_verify() -> None:
    """Ours (fixtures/hubspot/SOURCES.md): v3 over a URI with an escape HubSpot decodes, and v1."""
    body = (FIXTURES / VECTORS["body_file"]).read_text()
    secret, uri, timestamp = VECTORS["client_secret"], VECTORS["uri"], VECTORS["timestamp"]
    v3 = v3_headers(VECTORS["v3"], timestamp)
    assert verify_hubspot(secret, "POST", uri, body, v3, timestamp + 1000, False) == "v3"
    v1 = {"X-HubSpot-Signature": VECTORS["v1"], "X-HubSpot-Signature-Version": "v1"}
    assert verify_hubspot(secret, "POST", uri, body, v1, 0, True) == "v1"


def sign_v3(secret: str, method: str, uri: str, body: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{method}{uri}{body}{timestamp}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


@pytest.mark.parametrize(
    ("secret", "body", "now", "message"),
    [
        (SECRET, BODY + " ", TS, "X-HubSpot-Signature-v3 does not match"),
        ("wrong-secret", BODY, TS, "X-HubSpot-Signature-v3 does not match"),
        (SECRET, BODY, TS + 5 * 60 * 1000 + 1, "more than 5 minutes from our clock"),
        (SECRET, BODY, TS - 5 * 60 * 1000 - 1, "more than 5 minutes from our clock"),
    ],
    ids=["tampered-body", "wrong-secret", "stale", "from-the-future"],
)
def test_bad_v3_signatures_are_refused(secret: str, body: str, now: int, message: str) -> None:
    headers = v3_headers(sign_v3(secret, "POST", URI, BODY, TS))  # signed by whoever sent it
    with pytest.raises(SignatureError, match=message):
        verify_hubspot(SECRET, "POST", URI, body, headers, now, False)


def test_the_uri_is_signed_with_hubspots_few_escapes_decoded() -> None:
    assert (
        signed_uri("https://x.example/hook?a=b%3Ac%2Fd%20e") == "https://x.example/hook?a=b:c/d%20e"
    )


def event(**fields: object) -> dict[str, object]:
    base = {"eventId": 1, "subscriptionId": 25, "portalId": 33, "occurredAt": 1462216307945}
    return base | fields


@pytest.mark.parametrize(
    ("raw", "kind", "subject", "related", "value"),
    [
        (
            event(
                subscriptionType="contact.associationChange",
                associationType="CONTACT_TO_COMPANY",
                fromObjectId=101,
                toObjectId=201,
                associationRemoved=True,
            ),
            ChangeKind.CONTACT_LEFT_ACCOUNT,
            "101",
            "201",
            None,
        ),
        (
            event(
                subscriptionType="contact.propertyChange",
                objectId=101,
                propertyName="jobtitle",
                propertyValue="VP Operations",
            ),
            ChangeKind.CONTACT_TITLE_CHANGED,
            "101",
            None,
            "VP Operations",
        ),
        (
            event(
                subscriptionType="company.propertyChange",
                objectId=201,
                propertyName="hubspot_owner_id",
                propertyValue="64492917",
            ),
            ChangeKind.ACCOUNT_OWNER_CHANGED,
            "201",
            None,
            "64492917",
        ),
        (
            event(
                subscriptionType="object.propertyChange",
                objectTypeId="0-27",
                objectId=512,
                propertyName="hs_task_status",
                propertyValue="COMPLETED",
            ),
            ChangeKind.TASK_COMPLETED,
            "512",
            None,
            "COMPLETED",
        ),
    ],
)
def test_events_we_act_on_become_crm_changes(
    raw: dict[str, object], kind: ChangeKind, subject: str, related: str | None, value: str | None
) -> None:
    [parsed] = parse_events([raw])
    change = to_change(parsed)
    assert change is not None
    assert (change.kind, change.subject_id, change.related_id, change.value) == (
        kind,
        subject,
        related,
        value,
    )
    assert change.delivery_key == "33:25:1:1462216307945"


def test_a_delivery_naming_its_type_eventtype_parses_and_is_ignored() -> None:
    body = json.loads(
        (FIXTURES / "contact_property_change_and_creation__event_type.json").read_text()
    )
    events = parse_events(body)
    assert [e.kind for e in events] == ["contact.propertyChange", "contact.creation"]
    assert [to_change(e) for e in events] == [None, None]  # lifecycle stage, creation: not ours


@pytest.mark.parametrize(
    "raw",
    [
        event(
            subscriptionType="contact.associationChange",
            associationType="COMPANY_TO_CONTACT",
            fromObjectId=201,
            toObjectId=101,
            associationRemoved=True,
        ),
        event(
            subscriptionType="contact.associationChange",
            associationType="CONTACT_TO_COMPANY",
            fromObjectId=101,
            toObjectId=201,
            associationRemoved=False,
        ),
        event(
            subscriptionType="object.propertyChange",
            objectTypeId="0-27",
            objectId=5,
            propertyName="hs_task_status",
            propertyValue="IN_PROGRESS",
        ),
        event(subscriptionType="deal.creation", objectId=9),
    ],
    ids=["other-side-of-association", "association-added", "task-not-completed", "unhandled"],
)
def test_events_we_do_not_act_on_map_to_nothing(raw: dict[str, object]) -> None:
    [parsed] = parse_events([raw])
    assert to_change(parsed) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"X-HubSpot-Signature-v3": "séance", "X-HubSpot-Request-Timestamp": str(TS)},
        {"X-HubSpot-Signature": "ñ", "X-HubSpot-Signature-Version": "v1"},
    ],
    ids=["v3", "v1"],
)
def test_a_non_ascii_signature_is_refused_not_a_crash(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verify_hubspot(SECRET, "POST", URI, BODY, headers, TS, True)
