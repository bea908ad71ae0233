"""Salesforce Outbound Messages: parse the SOAP envelope safely, and write the ack or a fault.

defusedxml refuses DTDs and entity declarations, so a hostile body cannot expand entities or
reach files. Only Salesforce's own shape is accepted (reference/salesforce.md 9).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element  # noqa: S405 - only for the type; parsing is defusedxml
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_NOTIFICATIONS = 100  # Salesforce sends at most 100 per message

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
)


class OutboundMessageError(ValueError):
    """The body is not an Outbound Message we can take; answered with a SOAP fault."""


@dataclass(frozen=True, slots=True)
class RecordNotification:
    notification_id: str
    sobject_type: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    organization_id: str
    action_id: str
    notifications: tuple[RecordNotification, ...]
    # Notifications we cannot use (a deleted record comes with no data): reported, not faulted,
    # because a fault makes Salesforce drop the whole message, good notifications included.
    skipped: tuple[str, ...] = ()


def fault(message: str, code: str = "soapenv:Client") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def parse_outbound(body: bytes) -> OutboundMessage:
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, LookupError, ValueError) as exc:
        # LookupError: an encoding declaration Python does not know (`encoding="x-no-such"`).
        msg = f"not a well-formed XML document without DTD or entities: {exc}"
        raise OutboundMessageError(msg) from exc
    notifications = root.find(f"{{{SOAP}}}Body/{{{OUTBOUND}}}notifications")
    if root.tag != f"{{{SOAP}}}Envelope" or notifications is None:
        msg = "expected soapenv:Envelope/soapenv:Body/notifications (Salesforce outbound message)"
        raise OutboundMessageError(msg)
    items = notifications.findall(f"{{{OUTBOUND}}}Notification")
    if not 0 < len(items) <= MAX_NOTIFICATIONS:
        msg = f"expected 1 to {MAX_NOTIFICATIONS} Notification elements, got {len(items)}"
        raise OutboundMessageError(msg)
    good, skipped = [], []
    for index, item in enumerate(items):
        try:
            good.append(_notification(item, index))
        except OutboundMessageError as exc:
            skipped.append(str(exc))
    return OutboundMessage(
        organization_id=_text(notifications, "OrganizationId"),
        action_id=_text(notifications, "ActionId"),
        notifications=tuple(good),
        skipped=tuple(skipped),
    )


def _text(parent: Element, name: str) -> str:
    found = parent.find(f"{{{OUTBOUND}}}{name}")
    if found is None or not (found.text or "").strip():
        msg = f"missing {name}"
        raise OutboundMessageError(msg)
    return (found.text or "").strip()


def _notification(item: Element, index: int) -> RecordNotification:
    sobject = item.find(f"{{{OUTBOUND}}}sObject")
    if sobject is None:
        msg = f"Notification[{index}] has no sObject"
        raise OutboundMessageError(msg)
    sobject_type = sobject.get(XSI_TYPE, "").split(":")[-1]
    fields = {
        child.tag.split("}")[-1]: (child.text or "").strip()
        for child in sobject
        if child.tag.startswith(f"{{{SOBJECT}}}")
    }
    if not sobject_type or not fields.get("Id"):
        msg = f"Notification[{index}] needs an sObject type and an sf:Id"
        raise OutboundMessageError(msg)
    return RecordNotification(_text(item, "Id"), sobject_type, fields)
