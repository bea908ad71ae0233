"""HubSpot as a CRM behind the protocol: companies, contacts, tasks, notes, sequences.

Each operation builds HubSpot's wire body (mapping.py) and sends it through the transport
(transport.py), which owns the shared rate limit, waits, retries and error translation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import requests
from hubspot import HubSpot
from redis import Redis

from adapters.batching import Splitter, chunks, create_in_batches
from adapters.hubspot import batches, mapping, people
from adapters.hubspot.auth import TokenSource
from adapters.hubspot.errors import CRM
from adapters.hubspot.responses import checked, error_reasons, primary_company
from adapters.hubspot.transport import HubSpotTransport
from adapters.protocol import (
    BatchOutcome,
    CrmAccount,
    CrmContact,
    CrmUser,
    FieldUpdate,
    NoteRequest,
    OwnerNotification,
    RecordKind,
    SequenceEnrollment,
    TaskRequest,
    WriteResult,
    account_facts,
    task_key,
)
from integration.config.schema import HubSpotCrm as HubSpotSettings
from integration.errors import CrmError, CrmFeatureUnavailableError
from integration.store import keys

# https://developers.hubspot.com/docs/api-reference/crm-objects/guide: 100 inputs per batch call.
HUBSPOT_BATCH_LIMIT = 100
SEQUENCES_PATH = "/automation/v4/sequences/enrollments"
NOT_FOUND = 404
OWNER_CACHE_SECONDS = 3600


@dataclass
class HubSpotCrm:
    """CrmAdapter for one HubSpot portal."""

    settings: HubSpotSettings
    match_field: str
    tokens: TokenSource
    redis: Redis
    sleep: Callable[[float], None] = time.sleep
    facts: Mapping[str, str] = field(default_factory=dict)  # fact -> company property
    name: str = CRM
    transport: HubSpotTransport = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.transport = HubSpotTransport(self.settings, self.tokens, self.redis, self.sleep)
        self._call = self.transport.call

    def _timeout(self) -> float:
        return self.settings.request_timeout_seconds

    # -- accounts and contacts -----------------------------------------------------------------

    def _company_properties(self) -> list[str]:
        names = [*mapping.COMPANY_PROPERTIES, self.match_field, *self.facts.values()]
        if self.settings.owner_property:
            names.append(self.settings.owner_property)
        return names

    def find_accounts(self, product_account_ids: Sequence[str]) -> dict[str, CrmAccount]:
        wanted = list(dict.fromkeys(product_account_ids))
        found = self._cached_accounts(wanted)
        missing = [account_id for account_id in wanted if account_id not in found]
        for batch in chunks(missing, HUBSPOT_BATCH_LIMIT):
            found |= self._read_companies(batch)
        fallback = self.settings.account_fallback_property
        for account_id in (a for a in missing if a not in found and fallback):
            account = self._search_company(fallback, account_id)  # type: ignore[arg-type]
            if account is not None:
                found[account_id] = account
        self._cache_accounts({k: found[k] for k in missing if k in found})
        return found

    def _read_companies(self, product_ids: Sequence[str]) -> dict[str, CrmAccount]:
        body = {
            "idProperty": self.match_field,
            "properties": self._company_properties(),
            "propertiesWithHistory": [],
            "inputs": [{"id": pid} for pid in product_ids],
        }
        response = self._call(
            "batch_read_companies",
            lambda hub: hub.crm.companies.batch_api.read(
                batch_read_input_simple_public_object_id=body, _request_timeout=self._timeout()
            ),
        )
        # Results are not in input order, and unknown ids are either left out or reported as
        # OBJECT_NOT_FOUND errors in a 207 (UNCONFIRMED which): both read as "not found".
        accounts = {}
        for record in response.results or []:
            account = self._account(record.id, record.properties or {})
            if account.product_account_id:
                accounts[account.product_account_id] = account
        return accounts

    def _search_company(self, property_name: str, value: str) -> CrmAccount | None:
        body = mapping.first_match_search(property_name, value, self._company_properties())
        response = self._call(
            "search_companies",
            lambda hub: hub.crm.companies.search_api.do_search(
                public_object_search_request=body, _request_timeout=self._timeout()
            ),
            search=True,
        )
        records = response.results or []
        return self._account(records[0].id, records[0].properties or {}) if records else None

    def _account(self, record_id: str, properties: dict[str, Any]) -> CrmAccount:
        account = mapping.company_account(
            record_id, properties, self.match_field, self.settings.owner_property
        )
        return replace(account, facts=account_facts(properties, self.facts))

    def find_account_by_domain(self, domain: str) -> CrmAccount | None:
        return self._search_company("domain", domain)

    def find_contact(self, email: str) -> CrmContact | None:
        def get(hub: HubSpot) -> Any:  # noqa: ANN401 - the SDK's models are untyped
            return hub.crm.contacts.basic_api.get_by_id(
                contact_id=email,
                id_property="email",
                properties=["email", "firstname", "lastname"],
                _request_timeout=self._timeout(),
            )

        record = self._get_or_none("get_contact", get)
        if record is None:
            return None
        properties = record.properties or {}
        name = " ".join(p for p in (properties.get("firstname"), properties.get("lastname")) if p)
        return CrmContact(record.id, properties.get("email") or email, name or email)

    def account_by_id(self, crm_id: str) -> CrmAccount | None:
        def get(hub: HubSpot) -> Any:  # noqa: ANN401 - the SDK's models are untyped
            return hub.crm.companies.basic_api.get_by_id(
                company_id=crm_id,
                properties=self._company_properties(),
                _request_timeout=self._timeout(),
            )

        record = self._get_or_none("get_company", get)
        return self._account(record.id, record.properties or {}) if record else None

    def contact_by_id(self, crm_id: str) -> CrmContact | None:
        properties = self._contact_properties()

        def get(hub: HubSpot) -> Any:  # noqa: ANN401 - the SDK's models are untyped
            return hub.crm.contacts.basic_api.get_by_id(
                contact_id=crm_id,
                properties=properties,
                associations=["companies"],
                _request_timeout=self._timeout(),
            )

        record = self._get_or_none("get_contact", get)
        if record is None:
            return None
        return self._contact(record.id, record.properties or {}, primary_company(record))

    def _contact_properties(self) -> list[str]:
        names = ["email", "firstname", "lastname", "jobtitle"]
        if self.settings.champion_property:
            names.append(self.settings.champion_property)
        return names

    def _contact(
        self, record_id: str, values: dict[str, Any], account: str | None, primary: bool = False
    ) -> CrmContact:
        champion = self.settings.champion_property
        return people.contact(
            record_id, values, champion, self.settings.champion_values, account, primary
        )

    def account_contacts(self, account_crm_id: str) -> list[CrmContact]:
        """Two calls for most companies: the company's contact associations (500 a page),
        then the contacts themselves (batch read, 100 a call)."""
        primary = self._associated_contacts(account_crm_id)
        contacts: dict[str, CrmContact] = {}
        for batch in chunks(list(primary), HUBSPOT_BATCH_LIMIT):
            body = {
                "properties": self._contact_properties(),
                "propertiesWithHistory": [],
                "inputs": [{"id": contact_id} for contact_id in batch],
            }
            response = self._call(
                "batch_read_contacts",
                lambda hub, body=body: hub.crm.contacts.batch_api.read(  # type: ignore[misc]
                    batch_read_input_simple_public_object_id=body,
                    _request_timeout=self._timeout(),
                ),
            )
            for record in response.results or []:
                contacts[str(record.id)] = self._contact(
                    record.id, record.properties or {}, account_crm_id, primary[str(record.id)]
                )
        # Batch read answers in no particular order: keep HubSpot's association order.
        return [contacts[cid] for cid in primary if cid in contacts]

    def _associated_contacts(self, company_id: str) -> dict[str, bool]:
        """Contact ids associated with the company, each with whether it is the primary one."""
        found: dict[str, bool] = {}
        after: str | None = None
        while True:

            def page(hub: HubSpot, after: str | None = after) -> Any:  # noqa: ANN401
                return hub.crm.associations.v4.basic_api.get_page(
                    object_type="companies",
                    object_id=company_id,
                    to_object_type="contacts",
                    limit=people.ASSOCIATIONS_PAGE_LIMIT,
                    after=after,
                    _request_timeout=self._timeout(),
                )

            answer = self._get_or_none("get_company_contacts", page)
            for item in getattr(answer, "results", None) or []:
                contact_id = str(item.to_object_id)
                found[contact_id] = found.get(contact_id, False) or people.is_primary(
                    item.association_types
                )
            paging = getattr(answer, "paging", None)
            after = paging.next.after if paging and paging.next else None
            if not after:
                return found

    def user(self, user_id: str) -> CrmUser | None:
        """The owner with this id (hubspot_owner_id); None for an unknown or archived one."""
        if not user_id.isdigit():
            return None

        def get(hub: HubSpot) -> Any:  # noqa: ANN401 - the SDK's models are untyped
            return hub.crm.owners.owners_api.get_by_id(
                owner_id=int(user_id), id_property="id", _request_timeout=self._timeout()
            )

        owner = self._get_or_none("get_owner", get)
        return people.owner_user(owner) if owner is not None else None

    def record_url(self, account_crm_id: str) -> str | None:
        """The company's page in HubSpot; None until crm.hubspot.portal_id is set."""
        portal = self.settings.portal_id
        if not portal:
            return None
        return people.record_url(self.settings.base_url, portal, account_crm_id)

    def object_url(
        self, kind: RecordKind, crm_id: str, account_crm_id: str | None = None
    ) -> str | None:
        """A company's record page. Tasks and notes are activities: HubSpot documents no page
        of their own (they show on the timeline of the records they are associated with, and
        the tasks tool's links are not a documented format), so they link to their company's
        page; None for those without a company, or until crm.hubspot.portal_id is set."""
        company = crm_id if kind == "account" else account_crm_id
        return self.record_url(company) if company else None

    def reassign_task(self, task_crm_id: str, owner_id: str) -> None:
        body = {"properties": {"hubspot_owner_id": owner_id}}
        self._update_task("update_task", task_crm_id, body)

    def complete_task(self, task_crm_id: str) -> None:
        """Status COMPLETED; a task HubSpot no longer has (deleted by the rep) is left alone."""
        body = {"properties": {"hs_task_status": "COMPLETED"}}
        try:
            self._update_task("complete_task", task_crm_id, body)
        except CrmError as exc:
            if exc.status != NOT_FOUND:
                raise

    def _update_task(self, operation: str, task_crm_id: str, body: dict[str, Any]) -> None:
        self._call(
            operation,
            lambda hub: hub.crm.objects.tasks.basic_api.update(
                task_id=task_crm_id,
                simple_public_object_input=body,
                _request_timeout=self._timeout(),
            ),
        )

    def _get_or_none(self, operation: str, get: Callable[[HubSpot], Any]) -> Any:  # noqa: ANN401
        try:
            return self._call(operation, get)
        except CrmError as exc:
            if exc.status == NOT_FOUND:
                return None
            raise

    # -- lookup cache (Redis, short-lived: an admin's fix shows up within a minute) ------------

    def _cache_key(self, product_id: str) -> str:
        return keys.crm_company("hubspot", self.match_field, product_id)

    def _cached_accounts(self, product_ids: Sequence[str]) -> dict[str, CrmAccount]:
        if not self.settings.lookup_cache_seconds or not product_ids:
            return {}
        raw = self.redis.mget([self._cache_key(pid) for pid in product_ids])
        return {
            pid: CrmAccount(**json.loads(hit))
            for pid, hit in zip(product_ids, raw, strict=True)
            if hit
        }

    def _cache_accounts(self, accounts: dict[str, CrmAccount]) -> None:
        ttl = self.settings.lookup_cache_seconds
        if not ttl or not accounts:
            return
        pipe = self.redis.pipeline(transaction=False)
        for pid, account in accounts.items():
            pipe.set(self._cache_key(pid), json.dumps(asdict(account)), ex=ttl)
        pipe.execute()

    # -- writes ----------------------------------------------------------------------------------

    def write_fields(self, updates: Sequence[FieldUpdate]) -> WriteResult:
        """Batch update, 100 a call. HubSpot refuses a whole batch (400) when one company names
        a property the portal lacks, so such a batch is split (adapters/batching.py) and the
        other companies are still written."""
        splitter: Splitter[FieldUpdate, str | None] = Splitter(
            self._update_batch, lambda _, reason: reason, lambda update: update.values.keys()
        )
        written: list[str] = []
        rejected: dict[str, str] = {}
        for batch in chunks(updates, HUBSPOT_BATCH_LIMIT):
            for update, refusal in zip(batch, splitter(batch), strict=True):
                if refusal is None:
                    written.append(update.crm_id)
                else:
                    rejected[update.crm_id] = refusal
        return WriteResult(tuple(written), rejected)

    def _update_batch(self, batch: Sequence[FieldUpdate]) -> list[str | None]:
        """HubSpot's refusal of each update of one batch call (a 207), None for those written."""
        body = {
            "inputs": [
                {
                    "id": u.crm_id,
                    "properties": {k: mapping.property_value(v) for k, v in u.values.items()},
                }
                for u in batch
            ]
        }
        response = self._update_companies(body)
        done = {record.id for record in response.results or []}
        reasons = error_reasons(getattr(response, "errors", None) or [])
        missing = reasons.get("*", "HubSpot did not update this company")
        return [None if u.crm_id in done else reasons.get(u.crm_id) or missing for u in batch]

    def _update_companies(self, body: dict[str, Any]) -> Any:  # noqa: ANN401 - untyped SDK model
        return self._call(
            "batch_update_companies",
            lambda hub: hub.crm.companies.batch_api.update(
                batch_input_simple_public_object_batch_input=body, _request_timeout=self._timeout()
            ),
        )

    def create_task(self, task: TaskRequest) -> str:
        body = mapping.task_input(task, self.settings.task_key_property)
        record = self._call(
            "create_task",
            lambda hub: hub.crm.objects.tasks.basic_api.create(
                simple_public_object_input_for_create=body, _request_timeout=self._timeout()
            ),
            creates=True,
        )
        return str(record.id)

    def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[BatchOutcome]:
        """Batch create, 100 a call, each with its company and contact associations inline
        and its key in task_key_property, as create_task."""
        key = self.settings.task_key_property
        bodies = [mapping.task_input(task, key) for task in tasks]
        return create_in_batches(
            bodies,
            HUBSPOT_BATCH_LIMIT,
            lambda batch: self._create_batch("tasks", batch, key),
            _properties,
        )

    def create_notes(self, notes: Sequence[NoteRequest]) -> list[BatchOutcome]:
        bodies = [mapping.note_input(note) for note in notes]
        return create_in_batches(
            bodies,
            HUBSPOT_BATCH_LIMIT,
            lambda batch: self._create_batch("notes", batch, None),
            _properties,
        )

    def _create_batch(
        self, object_type: str, bodies: Sequence[dict[str, Any]], key_property: str | None
    ) -> list[BatchOutcome]:
        inputs = batches.traced(bodies)

        def send(hub: HubSpot) -> Any:  # noqa: ANN401 - the SDK's models are untyped
            api = getattr(hub.crm.objects, object_type).batch_api
            return api.create(
                batch_input_simple_public_object_batch_input_for_create={"inputs": inputs},
                _request_timeout=self._timeout(),
            )

        response = self._call(f"batch_create_{object_type}", send, creates=True)
        return batches.outcomes(inputs, response, key_property)

    def find_task(self, idempotency_key: str) -> str | None:
        body = mapping.first_match_search(
            self.settings.task_key_property, task_key(idempotency_key), ["hs_task_subject"]
        )
        response = self._call(
            "search_tasks",
            lambda hub: hub.crm.objects.tasks.search_api.do_search(
                public_object_search_request=body, _request_timeout=self._timeout()
            ),
            search=True,
        )
        records = response.results or []
        return str(records[0].id) if records else None

    def create_note(self, note: NoteRequest) -> str:
        body = mapping.note_input(note)
        record = self._call(
            "create_note",
            lambda hub: hub.crm.objects.notes.basic_api.create(
                simple_public_object_input_for_create=body, _request_timeout=self._timeout()
            ),
            creates=True,
        )
        return str(record.id)

    def notify_owner(self, notification: OwnerNotification) -> str:
        """HubSpot has no API to send a user a notification; its task assignment already does."""
        msg = "HubSpot has no API for owner notifications; the owner is notified of the task"
        raise CrmFeatureUnavailableError(CRM, "notify_owner", msg)

    def _sender(self, owner_id: str) -> tuple[str, str]:
        """The owner's (email, user id) to enroll as, kept for an hour: one owner enrolls many
        contacts, and owners rarely change their login."""
        key = keys.crm_owner("hubspot", owner_id)
        cached = self.redis.get(key)
        if cached:
            email, user_id = json.loads(cached)
            return str(email), str(user_id)
        owner = self._call(
            "get_owner",
            lambda hub: hub.crm.owners.owners_api.get_by_id(
                owner_id=int(owner_id), id_property="id", _request_timeout=self._timeout()
            ),
        )
        self.redis.set(key, json.dumps([owner.email, owner.user_id]), ex=OWNER_CACHE_SECONDS)
        return str(owner.email), str(owner.user_id)

    def enroll_in_sequence(self, enrollment: SequenceEnrollment) -> str:
        sender_email, user_id = self._sender(enrollment.owner_id)
        body = {
            "contactId": enrollment.contact_crm_id,
            "sequenceId": enrollment.sequence_id,
            "senderEmail": sender_email,
        }
        # hubspot-api-client 12 has no sequences API, and its api_request has no timeout, does
        # not raise on 4xx/5xx and ignores the retry setting: call it with requests directly.
        url = f"{self.settings.base_url.rstrip('/')}{SEQUENCES_PATH}"

        def enroll(_: HubSpot) -> dict[str, Any]:
            return checked(
                requests.post(
                    url,
                    params={"userId": user_id},
                    json=body,
                    timeout=self._timeout(),
                    headers={"Authorization": f"Bearer {self.transport.token}"},
                )
            )

        answer = self._call("enroll_in_sequence", enroll, creates=True)
        return str(answer.get("id", ""))


def _properties(body: Mapping[str, Any]) -> Collection[str]:
    """The properties a create input names, for setting aside those HubSpot says do not exist."""
    return dict(body.get("properties") or {}).keys()
