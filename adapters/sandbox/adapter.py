"""The sandbox CRM: companies, contacts and tasks in a local SQLite file.

It lets the whole service run with no CRM account (the demo, the end-to-end tests), and it behaves
like the real ones where that matters: records must exist before they are found, fields are written
in batches, and it never deduplicates tasks for us.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

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
)
from adapters.sandbox.schema import prepare

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SandboxNote:
    crm_id: str
    body: str
    company_id: str
    contact_id: str | None
    owner_id: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class SandboxTask:
    crm_id: str
    subject: str
    body: str
    due_date: str
    priority: str
    task_type: str
    status: str
    owner_id: str | None
    company_id: str
    contact_id: str | None


class SandboxCrm:
    """CrmAdapter over SQLite; safe to share between a web process and several workers."""

    name = "sandbox"

    def __init__(
        self, path: Path, match_field: str, facts: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self.match_field = match_field
        self.facts = dict(facts or {})  # fact name -> company property holding it

    @classmethod
    def open(
        cls,
        path: Path,
        match_field: str,
        seed_file: Path | None = None,
        facts: Mapping[str, str] | None = None,
    ) -> SandboxCrm:
        path.parent.mkdir(parents=True, exist_ok=True)
        crm = cls(path, match_field, facts)
        with crm._db() as db:
            db.execute("pragma journal_mode=wal")
            prepare(db)
        if seed_file is not None:
            crm.seed(yaml.safe_load(seed_file.read_text(encoding="utf-8")) or {})
        return crm

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    def seed(self, data: dict[str, Any]) -> None:
        """Add owners, companies and contacts that are not there yet (ids are kept)."""
        with self._db() as db:
            for owner in data.get("owners", []):
                manager = owner.get("manager_id")
                db.execute(
                    "insert or ignore into owners (id, name, email, manager_id) "
                    "values (?, ?, ?, ?)",
                    (
                        str(owner["id"]),
                        owner["name"],
                        owner.get("email"),
                        str(manager) if manager is not None else None,
                    ),
                )
            for company in data.get("companies", []):
                db.execute(
                    "insert or ignore into companies values (?, ?, ?, ?, ?)",
                    (
                        str(company["id"]),
                        company["name"],
                        company.get("domain"),
                        company.get("owner_id"),
                        json.dumps(company.get("properties", {})),
                    ),
                )
            for contact in data.get("contacts", []):
                db.execute(
                    "insert or ignore into contacts "
                    "(id, email, name, company_id, title, is_champion, is_primary) "
                    "values (?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(contact["id"]),
                        contact["email"].lower(),
                        contact["name"],
                        contact.get("company_id"),
                        contact.get("title"),
                        int(bool(contact.get("is_champion"))),
                        int(bool(contact.get("is_primary"))),
                    ),
                )

    def find_accounts(self, product_account_ids: Sequence[str]) -> dict[str, CrmAccount]:
        if not product_account_ids:
            return {}
        marks = ",".join("?" * len(product_account_ids))
        path = json.dumps(self.match_field)
        with self._db() as db:
            rows = db.execute(
                f"select *, json_extract(properties, '$.' || ?) as product_id from companies "  # noqa: S608 - only placeholders are interpolated
                f"where json_extract(properties, '$.' || ?) in ({marks})",
                (path, path, *product_account_ids),
            ).fetchall()
        return {str(row["product_id"]): self._account(row) for row in rows}

    def find_account_by_domain(self, domain: str) -> CrmAccount | None:
        with self._db() as db:
            row = db.execute(
                "select *, json_extract(properties, '$.' || ?) as product_id from companies "
                "where lower(domain) = lower(?) order by id limit 1",
                (json.dumps(self.match_field), domain),
            ).fetchone()
        return self._account(row) if row else None

    def _account(self, row: sqlite3.Row) -> CrmAccount:
        product_id = row["product_id"]
        properties = json.loads(row["properties"])
        facts = account_facts(properties, self.facts)
        return CrmAccount(
            crm_id=row["id"],
            name=row["name"],
            owner_id=row["owner_id"],
            product_account_id=str(product_id) if product_id is not None else None,
            domain=row["domain"],
            facts=facts,
        )

    def find_contact(self, email: str) -> CrmContact | None:
        with self._db() as db:
            row = db.execute("select * from contacts where email = ?", (email.lower(),)).fetchone()
        return self._contact(row) if row else None

    def contact_by_id(self, crm_id: str) -> CrmContact | None:
        with self._db() as db:
            row = db.execute("select * from contacts where id = ?", (crm_id,)).fetchone()
        return self._contact(row) if row else None

    def _contact(self, row: sqlite3.Row) -> CrmContact:
        return CrmContact(
            row["id"],
            row["email"],
            row["name"],
            row["company_id"],
            row["title"],
            bool(row["is_champion"]),
            bool(row["is_primary"]),
        )

    def account_contacts(self, account_crm_id: str) -> list[CrmContact]:
        with self._db() as db:
            rows = db.execute(
                "select * from contacts where company_id = ? order by rowid", (account_crm_id,)
            ).fetchall()
        return [self._contact(row) for row in rows]

    def user(self, user_id: str) -> CrmUser | None:
        with self._db() as db:
            row = db.execute("select * from owners where id = ?", (user_id,)).fetchone()
        if row is None:
            return None
        return CrmUser(row["id"], row["name"], row["email"], row["manager_id"])

    def record_url(self, account_crm_id: str) -> str | None:
        return f"sandbox://company/{account_crm_id}"

    def object_url(
        self, kind: RecordKind, crm_id: str, account_crm_id: str | None = None
    ) -> str | None:
        """The record's row in the sandbox file (`integration report` lists them)."""
        return f"sandbox://{'company' if kind == 'account' else kind}/{crm_id}"

    def account_by_id(self, crm_id: str) -> CrmAccount | None:
        with self._db() as db:
            row = db.execute(
                "select *, json_extract(properties, '$.' || ?) as product_id from companies "
                "where id = ?",
                (json.dumps(self.match_field), crm_id),
            ).fetchone()
        return self._account(row) if row else None

    def reassign_task(self, task_crm_id: str, owner_id: str) -> None:
        with self._db() as db:
            db.execute("update tasks set owner_id = ? where id = ?", (owner_id, task_crm_id))

    def write_fields(self, updates: Sequence[FieldUpdate]) -> WriteResult:
        written, rejected = [], {}
        with self._db() as db:
            for update in updates:
                row = db.execute(
                    "select properties from companies where id = ?", (update.crm_id,)
                ).fetchone()
                if row is None:
                    rejected[update.crm_id] = "no company with this id"
                    continue
                properties = json.loads(row["properties"]) | dict(update.values)
                db.execute(
                    "update companies set properties = ? where id = ?",
                    (json.dumps(properties), update.crm_id),
                )
                written.append(update.crm_id)
        return WriteResult(tuple(written), rejected)

    def create_task(self, task: TaskRequest) -> str:
        crm_id = uuid.uuid4().hex[:12]
        with self._db() as db:
            db.execute(
                "insert into tasks values (?, ?, ?, ?, ?, ?, 'NOT_STARTED', ?, ?, ?, ?, ?)",
                (
                    crm_id,
                    task.subject,
                    task.body,
                    task.due_date.isoformat(),
                    task.priority,
                    task.task_type,
                    task.owner_id,
                    task.account_crm_id,
                    task.contact_crm_id,
                    datetime.now(UTC).isoformat(),
                    task.idempotency_key,
                ),
            )
        logger.info("sandbox task created", extra={"crm_id": crm_id, "crm": self.name})
        return crm_id

    def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[BatchOutcome]:
        """One at a time; a task for a company the sandbox lacks is refused, as a CRM would."""
        return [
            BatchOutcome(self.create_task(task))
            if self._has_company(task.account_crm_id)
            else _no_company(task.account_crm_id)
            for task in tasks
        ]

    def create_notes(self, notes: Sequence[NoteRequest]) -> list[BatchOutcome]:
        return [
            BatchOutcome(self.create_note(note))
            if self._has_company(note.account_crm_id)
            else _no_company(note.account_crm_id)
            for note in notes
        ]

    def _has_company(self, crm_id: str) -> bool:
        with self._db() as db:
            return (
                db.execute("select 1 from companies where id = ?", (crm_id,)).fetchone() is not None
            )

    def complete_task(self, task_crm_id: str) -> None:
        with self._db() as db:
            db.execute("update tasks set status = 'COMPLETED' where id = ?", (task_crm_id,))

    def find_task(self, idempotency_key: str) -> str | None:
        with self._db() as db:
            row = db.execute(
                "select id from tasks where idempotency_key = ? and idempotency_key != ''",
                (idempotency_key,),
            ).fetchone()
        return str(row["id"]) if row else None

    def create_note(self, note: NoteRequest) -> str:
        crm_id = uuid.uuid4().hex[:12]
        with self._db() as db:
            db.execute(
                "insert into notes values (?, ?, ?, ?, ?, ?)",
                (
                    crm_id,
                    note.body,
                    note.account_crm_id,
                    note.contact_crm_id,
                    note.owner_id,
                    note.timestamp.isoformat(),
                ),
            )
        return crm_id

    def notify_owner(self, notification: OwnerNotification) -> str:
        crm_id = uuid.uuid4().hex[:12]
        with self._db() as db:
            db.execute(
                "insert into notifications values (?, ?, ?, ?, ?, ?)",
                (
                    crm_id,
                    notification.owner_id,
                    notification.title,
                    notification.body,
                    notification.account_crm_id,
                    datetime.now(UTC).isoformat(),
                ),
            )
        return crm_id

    def enroll_in_sequence(self, enrollment: SequenceEnrollment) -> str:
        crm_id = uuid.uuid4().hex[:12]
        with self._db() as db:
            db.execute(
                "insert into enrollments values (?, ?, ?, ?, ?)",
                (
                    crm_id,
                    enrollment.contact_crm_id,
                    enrollment.sequence_id,
                    enrollment.owner_id,
                    datetime.now(UTC).isoformat(),
                ),
            )
        return crm_id

    # Read-outs for the demo report and the end-to-end tests; not part of the CRM protocol.
    def tasks(self) -> list[SandboxTask]:
        with self._db() as db:
            rows = db.execute(
                "select id, subject, body, due_date, priority, task_type, status, owner_id, "
                "company_id, contact_id from tasks order by created_at, id"
            ).fetchall()
        return [SandboxTask(*row) for row in rows]

    def notes(self) -> list[SandboxNote]:
        with self._db() as db:
            rows = db.execute(
                "select id, body, company_id, contact_id, owner_id, created_at from notes "
                "order by created_at, id"
            ).fetchall()
        return [SandboxNote(*row) for row in rows]

    def company_properties(self, crm_id: str) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute("select properties from companies where id = ?", (crm_id,)).fetchone()
        return json.loads(row["properties"]) if row else {}

    def owner_name(self, owner_id: str | None) -> str:
        if owner_id is None:
            return "(no owner)"
        with self._db() as db:
            row = db.execute("select name from owners where id = ?", (owner_id,)).fetchone()
        return str(row["name"]) if row else owner_id


def _no_company(crm_id: str) -> BatchOutcome:
    return BatchOutcome(None, f"no company with id {crm_id!r}")
