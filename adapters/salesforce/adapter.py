"""Salesforce as a CRM behind the protocol: Accounts, Contacts, Tasks, Notes, cadences, alerts.

Every SOQL value goes through simple-salesforce's `format_soql` (quoted and escaped), and every
field name comes from validated config, so signal data can never change a query's meaning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis import Redis
from simple_salesforce.api import Salesforce
from simple_salesforce.format import format_soql

from adapters.batching import Splitter, chunks, create_in_batches, unknown
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
from adapters.salesforce import records as sf_records
from adapters.salesforce.errors import CRM, LOCKED_ROW_WAIT_SECONDS, TRANSIENT_CODES, first_error
from adapters.salesforce.transport import SalesforceTransport
from integration.config.schema import SalesforceCrm as SalesforceSettings
from integration.errors import (
    CrmError,
    CrmFatalError,
    CrmFeatureUnavailableError,
    CrmRetriableError,
)
from integration.store import keys
from integration.store.keys import text

# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
SALESFORCE_COLLECTION_LIMIT = 200
SOQL_IN_CHUNK = 200
NO_ANSWER = "Salesforce's answer had no result for this record"
NOTIFICATION_TITLE_MAX, NOTIFICATION_BODY_MAX = 250, 750
NOT_FOUND = 404
DOMAIN_CANDIDATES = 20
# How an org without Sales Engagement or the notification type answers (UNCONFIRMED: the
# reference expects a 404, or a 400 naming INVALID_TYPE / FUNCTIONALITY_NOT_ENABLED).
FEATURE_MISSING_CODES = frozenset({"NOT_FOUND", "INVALID_TYPE", "FUNCTIONALITY_NOT_ENABLED"})
# The sObjects behind `object_url`'s kinds (playbook notes are classic Notes: create_note).
LIGHTNING_OBJECTS = {"task": "Task", "note": "Note", "account": "Account"}


@dataclass
class SalesforceCrm:
    settings: SalesforceSettings
    match_field: str
    login: Callable[[Any], Salesforce]
    redis: Redis
    sleep: Callable[[float], None] = time.sleep
    facts: Mapping[str, str] = field(default_factory=dict)  # fact -> Account field
    name: str = CRM
    transport: SalesforceTransport = field(init=False, repr=False)
    _instance: str | None = field(default=None, init=False, repr=False)  # the org's host

    def __post_init__(self) -> None:
        self.transport = SalesforceTransport(self.settings, self.login, self.redis, self.sleep)
        self._call = self.transport.call

    def _timeout(self) -> float:
        return self.settings.request_timeout_seconds

    def _query(self, operation: str, soql: str) -> list[dict[str, Any]]:
        result = self._call(operation, lambda sf: sf.query_all(soql, timeout=self._timeout()))
        return list(result.get("records", []))

    # -- accounts and contacts -----------------------------------------------------------------

    def _account_fields(self) -> str:
        names = [
            "Id",
            "Name",
            "OwnerId",
            self.settings.account_domain_field,
            self.match_field,
            *self.facts.values(),
        ]
        if self.settings.owner_field:
            names.append(self.settings.owner_field)
        return ", ".join(dict.fromkeys(names))

    def _account(self, record: dict[str, Any]) -> CrmAccount:
        owner = record.get(self.settings.owner_field) if self.settings.owner_field else None
        return CrmAccount(
            crm_id=record["Id"],
            name=record.get("Name") or record["Id"],
            owner_id=owner or record.get("OwnerId"),
            product_account_id=record.get(self.match_field),
            domain=record.get(self.settings.account_domain_field),
            facts=account_facts(record, self.facts),
        )

    def find_accounts(self, product_account_ids: Sequence[str]) -> dict[str, CrmAccount]:
        found: dict[str, CrmAccount] = {}
        for batch in chunks(list(dict.fromkeys(product_account_ids)), SOQL_IN_CHUNK):
            soql = format_soql(
                f"SELECT {self._account_fields()} FROM Account "  # noqa: S608 - names from config
                f"WHERE {self.match_field} IN {{ids}}",
                ids=list(batch),
            )
            for record in self._query("query_accounts", soql):
                account = self._account(record)
                if account.product_account_id:
                    found[account.product_account_id] = account
        return found

    def find_account_by_domain(self, domain: str) -> CrmAccount | None:
        """The Account whose website's host is exactly this domain (or www. + it): a LIKE alone
        would also match bigacme.com or acme.com.au and file a people signal on the wrong one."""
        soql = format_soql(
            f"SELECT {self._account_fields()} FROM Account "  # noqa: S608 - names from config
            f"WHERE {self.settings.account_domain_field} LIKE '%{{:like}}%' "
            f"ORDER BY LastModifiedDate DESC LIMIT {DOMAIN_CANDIDATES}",
            domain,
        )
        wanted = domain.lower().removeprefix("www.")
        for record in self._query("query_account_by_domain", soql):
            if website_host(record.get(self.settings.account_domain_field)) == wanted:
                return self._account(record)
        return None

    def account_by_id(self, crm_id: str) -> CrmAccount | None:
        soql = format_soql(f"SELECT {self._account_fields()} FROM Account WHERE Id = {{}}", crm_id)  # noqa: S608
        records = self._query("query_account", soql)
        return self._account(records[0]) if records else None

    def _contact_fields(self) -> str:
        names = ["Id", "Email", "Name", "AccountId", "Title"]
        if self.settings.champion_field:
            names.append(self.settings.champion_field)
        return ", ".join(dict.fromkeys(names))

    def _contact(self, record: dict[str, Any], primary: bool = False) -> CrmContact:
        settings = self.settings
        return sf_records.contact(
            record, settings.champion_field, settings.champion_values, primary
        )

    def account_contacts(self, account_crm_id: str) -> list[CrmContact]:
        """Two queries: the Account's Contacts, then its primary contact role
        (AccountContactRole.IsPrimary, one per account), which may name a Contact whose own
        AccountId is another account."""
        contacts = self._query(
            "query_account_contacts",
            format_soql(
                f"SELECT {self._contact_fields()} FROM Contact "  # noqa: S608 - names from config
                "WHERE AccountId = {} ORDER BY CreatedDate",
                account_crm_id,
            ),
        )
        fields = ", ".join(f"Contact.{name}" for name in self._contact_fields().split(", "))
        roles = self._query(
            "query_primary_contact_role",
            format_soql(
                f"SELECT ContactId, {fields} FROM AccountContactRole "  # noqa: S608
                "WHERE AccountId = {} AND IsPrimary = true",
                account_crm_id,
            ),
        )
        primary = {str(role["ContactId"]): role.get("Contact") for role in roles}
        found = [self._contact(record, record["Id"] in primary) for record in contacts]
        listed = {contact.crm_id for contact in found}
        found += [
            self._contact(record, primary=True)
            for contact_id, record in primary.items()
            if contact_id not in listed and record
        ]
        return found

    def user(self, user_id: str) -> CrmUser | None:
        """The User with their manager (User.ManagerId), or None for an unknown id."""
        soql = format_soql("SELECT Id, Name, Email, ManagerId FROM User WHERE Id = {}", user_id)
        records = self._query("query_user", soql)
        return sf_records.user(records[0]) if records else None

    def record_url(self, account_crm_id: str) -> str | None:
        """The Account's Lightning page on the org's own host (from the login); None when
        the login cannot be had now."""
        return self.object_url("account", account_crm_id)

    def object_url(
        self, kind: RecordKind, crm_id: str, account_crm_id: str | None = None
    ) -> str | None:
        """The record's Lightning page, `{instance}/lightning/r/<Object>/<id>/view`: Tasks,
        Notes and Accounts each have one. None when the login cannot be had now."""
        if self._instance is None:
            try:
                self._instance = self._call("instance_url", lambda sf: sf.sf_instance)
            except CrmError:
                return None
        return f"https://{self._instance}/lightning/r/{LIGHTNING_OBJECTS[kind]}/{crm_id}/view"

    def find_contact(self, email: str) -> CrmContact | None:
        soql = format_soql(
            f"SELECT {self._contact_fields()} FROM Contact WHERE Email = {{}} "  # noqa: S608
            "ORDER BY LastModifiedDate DESC LIMIT 1",
            email,
        )
        records = self._query("query_contact", soql)
        return self._contact(records[0]) if records else None

    def contact_by_id(self, crm_id: str) -> CrmContact | None:
        soql = format_soql(f"SELECT {self._contact_fields()} FROM Contact WHERE Id = {{}}", crm_id)  # noqa: S608
        records = self._query("query_contact", soql)
        return self._contact(records[0]) if records else None

    # -- writes ----------------------------------------------------------------------------------

    def write_fields(self, updates: Sequence[FieldUpdate]) -> WriteResult:
        """sObject Collections, 200 a call, allOrNone false; records refused for a transient
        reason (a locked row) are sent once more, the others are reported. A collection refused
        whole (400, one record naming a field the org lacks) is split (adapters/batching.py)."""
        splitter: Splitter[FieldUpdate, str | None] = Splitter(
            self._update_batch, lambda _, reason: reason, lambda update: update.values.keys()
        )
        written: list[str] = []
        rejected: dict[str, str] = {}
        for batch in chunks(list(updates), SALESFORCE_COLLECTION_LIMIT):
            for update, refusal in zip(batch, splitter(batch), strict=True):
                if refusal is None:
                    written.append(update.crm_id)
                else:
                    rejected[update.crm_id] = refusal
        return WriteResult(tuple(written), rejected)

    def _update_batch(self, batch: Sequence[FieldUpdate]) -> list[str | None]:
        """Salesforce's refusal of each update of one collection, None for those written."""
        written: list[str] = []
        rejected: dict[str, str] = {}
        retry = self._update_collection(batch, written, rejected, final=False)
        if retry:
            self.sleep(LOCKED_ROW_WAIT_SECONDS)
            self._update_collection(retry, written, rejected, final=True)
        done = set(written)
        return [None if u.crm_id in done else rejected.get(u.crm_id, NO_ANSWER) for u in batch]

    def _update_collection(
        self,
        batch: Sequence[FieldUpdate],
        written: list[str],
        rejected: dict[str, str],
        final: bool,
    ) -> list[FieldUpdate]:
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "id": u.crm_id, **u.values} for u in batch
            ],
        }
        results = self._call(
            "update_accounts",
            lambda sf: sf.restful(
                "composite/sobjects", method="PATCH", json=body, timeout=self._timeout()
            ),
            urgent=False,
        )
        retry = []
        # Results come back in request order; a failed element has no id.
        for update, result in zip(batch, results or [], strict=False):
            if result.get("success"):
                written.append(update.crm_id)
                continue
            code, message = first_error(result.get("errors"))
            if code in TRANSIENT_CODES and not final:
                retry.append(update)
            else:
                rejected[update.crm_id] = f"{code}: {message}"
        return retry

    def create_task(self, task: TaskRequest) -> str:
        return self._create("Task", sf_records.task_record(task, self.settings.task_key_field))

    def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[BatchOutcome]:
        """sObject Collections, 200 a call, allOrNone false; each task carries its key in
        task_key_field, as create_task."""
        key = self.settings.task_key_field
        return self._create_records("Task", [sf_records.task_record(t, key) for t in tasks])

    def create_notes(self, notes: Sequence[NoteRequest]) -> list[BatchOutcome]:
        return self._create_records("Note", [sf_records.note_record(note) for note in notes])

    def _create_records(
        self, sobject: str, records: Sequence[dict[str, Any]]
    ) -> list[BatchOutcome]:
        def send(batch: Sequence[dict[str, Any]]) -> list[BatchOutcome]:
            outcomes, again = self._create_collection(sobject, batch)
            if again:  # refused for a locked row, so not saved: once more, after a pause
                self.sleep(LOCKED_ROW_WAIT_SECONDS)
                try:
                    retried, _ = self._create_collection(sobject, [batch[i] for i in again])
                except CrmError as exc:
                    # The first call's records keep their outcomes (those created, their
                    # ids); only the ones sent again take this answer.
                    retried = [_resend_failed(exc) for _ in again]
                for index, outcome in zip(again, retried, strict=True):
                    outcomes[index] = outcome
            return outcomes

        return create_in_batches(records, SALESFORCE_COLLECTION_LIMIT, send, _fields)

    def _create_collection(
        self, sobject: str, batch: Sequence[dict[str, Any]]
    ) -> tuple[list[BatchOutcome], list[int]]:
        body = sf_records.collection_body(sobject, batch)
        results = self._call(
            f"create_{sobject.lower()}s",
            lambda sf: sf.restful(
                "composite/sobjects", method="POST", json=body, timeout=self._timeout()
            ),
            creates=True,
        )
        answers = list(results or [])
        outcomes, again = [], []
        # Results come back in request order, one per record.
        for index in range(len(batch)):
            outcome, transient = sf_records.save_outcome(
                answers[index] if index < len(answers) else None
            )
            outcomes.append(outcome)
            if transient:
                again.append(index)
        return outcomes, again

    def find_task(self, idempotency_key: str) -> str | None:
        soql = format_soql(
            f"SELECT Id FROM Task WHERE {self.settings.task_key_field} = {{}} LIMIT 1",  # noqa: S608
            task_key(idempotency_key),
        )
        records = self._query("query_task", soql)
        return str(records[0]["Id"]) if records else None

    def reassign_task(self, task_crm_id: str, owner_id: str) -> None:
        self._update_task("update_task", task_crm_id, {"OwnerId": owner_id})

    def complete_task(self, task_crm_id: str) -> None:
        """Status Completed; a task Salesforce no longer has (deleted) is left alone."""
        try:
            self._update_task("complete_task", task_crm_id, {"Status": sf_records.COMPLETED})
        except CrmError as exc:
            if exc.status != NOT_FOUND:
                raise

    def _update_task(self, operation: str, task_crm_id: str, values: dict[str, Any]) -> None:
        self._call(
            operation,
            lambda sf: sf.restful(
                f"sobjects/Task/{task_crm_id}",
                method="PATCH",
                json=values,
                timeout=self._timeout(),
            ),
        )

    def create_note(self, note: NoteRequest) -> str:
        return self._create("Note", sf_records.note_record(note))

    def _create(self, sobject: str, record: dict[str, Any]) -> str:
        result = self._call(
            f"create_{sobject.lower()}",
            lambda sf: sf.restful(
                f"sobjects/{sobject}", method="POST", json=record, timeout=self._timeout()
            ),
            creates=True,
        )
        return str((result or {})["id"])

    # -- invocable actions: cadences and custom notifications --------------------------------

    def enroll_in_sequence(self, enrollment: SequenceEnrollment) -> str:
        inputs = {
            "salesCadenceNameOrId": enrollment.sequence_id,
            "targetId": enrollment.contact_crm_id,
            "userId": enrollment.owner_id,
        }
        self._action("assignTargetToSalesCadence", inputs, "Sales Engagement cadences")
        return f"cadence:{enrollment.sequence_id}:{enrollment.contact_crm_id}"

    def notify_owner(self, notification: OwnerNotification) -> str:
        type_id = self._notification_type_id()
        inputs = {
            "customNotifTypeId": type_id,
            "recipientIds": [notification.owner_id],
            "title": notification.title[:NOTIFICATION_TITLE_MAX],
            "body": notification.body[:NOTIFICATION_BODY_MAX],
            "targetId": notification.account_crm_id,
        }
        self._action("customNotificationAction", inputs, "custom notifications")
        return f"notification:{type_id}:{notification.account_crm_id}"

    def _notification_type_id(self) -> str:
        name = self.settings.notification_type
        if not name:
            msg = "no crm.salesforce.notification_type is configured"
            raise CrmFeatureUnavailableError(CRM, "notify_owner", msg)
        cache = keys.crm_notification_type("salesforce", name)
        cached = self.redis.get(cache)
        if cached:
            return text(cached)
        records = self._query(
            "query_notification_type",
            format_soql("SELECT Id FROM CustomNotificationType WHERE DeveloperName = {}", name),
        )
        if not records:
            msg = (
                f"the org has no custom notification type named {name!r} "
                "(Setup > Notification Builder > Custom Notifications)"
            )
            raise CrmFeatureUnavailableError(CRM, "notify_owner", msg)
        self.redis.set(cache, records[0]["Id"], ex=24 * 3600)
        return str(records[0]["Id"])

    def _action(self, action: str, inputs: dict[str, Any], feature: str) -> None:
        try:
            results = self._call(
                action,
                lambda sf: sf.restful(
                    f"actions/standard/{action}",
                    method="POST",
                    json={"inputs": [inputs]},
                    timeout=self._timeout(),
                ),
                creates=True,
            )
        except CrmError as exc:
            if exc.status == NOT_FOUND or any(code in str(exc) for code in FEATURE_MISSING_CODES):
                msg = f"the org cannot use {feature} ({exc})"
                raise CrmFeatureUnavailableError(CRM, action, msg, exc.status) from exc
            raise
        [result] = results or [{}]
        if not result.get("isSuccess"):
            code, message = first_error(result.get("errors"))
            raise CrmFatalError(CRM, action, f"{code}: {message}", 200)


def website_host(website: object) -> str:
    """'https://www.Acme.com/about' -> 'acme.com'."""
    text = str(website or "").strip().lower()
    host = urlsplit(text if "://" in text else f"//{text}").hostname or ""
    return host.removeprefix("www.")


def _fields(record: Mapping[str, Any]) -> Collection[str]:
    """The fields a record names, for setting aside those Salesforce says the org lacks."""
    return record.keys()


def _resend_failed(error: CrmError) -> BatchOutcome:
    """A locked row's record whose second send failed: worth a retry when the CRM may yet take
    it (unsent when it surely did nothing with it), refused otherwise."""
    if isinstance(error, CrmRetriableError):
        return unknown(error)
    return BatchOutcome(None, str(error))
