"""Reading HubSpot's people: owners as users, a company's contacts and which of them is primary.

HubSpot has no "primary contact" of a company. Its HUBSPOT_DEFINED "Primary" association
(type 2, company to contact) says the company is the contact's primary company, which every
contact of a one-company portal has, so it is not used. Portals mark the account's main person
with an association label of their own (USER_DEFINED), and a label named as below counts
(https://developers.hubspot.com/docs/api-reference/crm-associations-v4/guide, labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from adapters.protocol import CrmContact, CrmUser, is_champion

PRIMARY_CONTACT_LABELS = frozenset({"primary contact", "main contact", "primary"})
USER_DEFINED = "USER_DEFINED"
# https://developers.hubspot.com/docs/api-reference/crm-associations-v4/guide: 500 a page.
ASSOCIATIONS_PAGE_LIMIT = 500
APP_URL = "https://app.hubspot.com"
# EU portals are served from app-eu1 (UNCONFIRMED for other regions): follow the API host.
REGIONAL_API_HOSTS = {"api-eu1.hubapi.com": "https://app-eu1.hubspot.com"}
COMPANY_TYPE_ID = "0-2"


def is_primary(association_types: Sequence[Any]) -> bool:
    """Whether one of a company-to-contact association's types is a primary-contact label."""
    return any(
        getattr(spec, "category", None) == USER_DEFINED
        and str(getattr(spec, "label", None) or "").strip().lower() in PRIMARY_CONTACT_LABELS
        for spec in association_types or []
    )


def contact(
    record_id: str,
    values: Mapping[str, Any],
    champion_property: str | None,
    champion_values: Sequence[str],
    account_crm_id: str | None,
    primary: bool = False,
) -> CrmContact:
    name = " ".join(p for p in (values.get("firstname"), values.get("lastname")) if p)
    email = values.get("email") or ""
    return CrmContact(
        str(record_id),
        email,
        name or email,
        account_crm_id,
        values.get("jobtitle"),
        bool(champion_property)
        and is_champion(values.get(champion_property or "") or "", champion_values),
        primary,
    )


def owner_user(owner: Any) -> CrmUser:  # noqa: ANN401 - the SDK's untyped PublicOwner
    """A HubSpot owner; owners have no manager in HubSpot (config names one)."""
    name = " ".join(p for p in (owner.first_name, owner.last_name) if p)
    return CrmUser(str(owner.id), name or owner.email or str(owner.id), owner.email or None, None)


def record_url(base_url: str, portal_id: str, company_id: str) -> str:
    app = REGIONAL_API_HOSTS.get(urlsplit(base_url).hostname or "", APP_URL)
    return f"{app}/contacts/{portal_id}/record/{COMPANY_TYPE_ID}/{company_id}"
