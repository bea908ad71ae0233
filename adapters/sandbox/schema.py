"""The sandbox CRM's tables, and bringing a file made by an older release up to them."""

from __future__ import annotations

import sqlite3

SCHEMA = """
create table if not exists owners (
    id text primary key, name text not null, email text, manager_id text
);
create table if not exists companies (
    id text primary key, name text not null, domain text, owner_id text,
    properties text not null default '{}'
);
create table if not exists contacts (
    id text primary key, email text not null unique, name text not null, company_id text,
    title text, is_champion integer not null default 0,
    is_primary integer not null default 0
);
create table if not exists tasks (
    id text primary key, subject text not null, body text not null, due_date text not null,
    priority text not null, task_type text not null, status text not null, owner_id text,
    company_id text not null, contact_id text, created_at text not null,
    idempotency_key text not null default ''
);
create index if not exists tasks_by_key on tasks (idempotency_key);
create table if not exists notes (
    id text primary key, body text not null, company_id text not null, contact_id text,
    owner_id text, created_at text not null
);
create table if not exists notifications (
    id text primary key, owner_id text not null, title text not null, body text not null,
    company_id text not null, created_at text not null
);
create table if not exists enrollments (
    id text primary key, contact_id text not null, sequence_id text not null,
    owner_id text not null, created_at text not null
);
"""

# Columns added since the first release, with their definitions: added to older files on open.
ADDED_COLUMNS = {
    "owners": {"manager_id": "text"},
    "contacts": {"is_primary": "integer not null default 0"},
}


def prepare(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in db.execute(f"pragma table_info({table})")}
        for name, definition in columns.items():
            if name not in present:
                db.execute(f"alter table {table} add column {name} {definition}")
