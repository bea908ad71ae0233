"""Signals: what the outside world tells us, parsed at the edge and kept as plain facts in the core.

Payload models are pydantic (vendors and senders add fields, so usage ignores unknown keys; job
changes keep them in `raw`). What the core works with are frozen dataclasses.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from integration.errors import PayloadError
from integration.signals.limits import AccountId, Moment, kept_value_problem

# An event further in the future than this is a sender's clock or unit bug (ms vs s), not usage.
MAX_CLOCK_SKEW = timedelta(days=1)
# Live events land in the exact part of the rollups (rollups.RECENT_DAYS, with a day to spare
# for a sender's clock); older days are kept within 3%, where adding one event to a day would be
# lost in the rounding, so they come only through the import, which sets whole days.
MAX_EVENT_AGE = timedelta(days=180)
# Source names used in error answers.
USAGE = "usage"
JOB_CHANGES = "job_changes"


PayloadT = TypeVar("PayloadT", bound=BaseModel)


class ChangeType(StrEnum):
    COMPANY_CHANGE = "company_change"
    PROMOTION = "promotion"
    LEFT_COMPANY = "left_company"


class UsageEventIn(BaseModel):
    """One product usage event as a sender posts it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    account_id: AccountId
    user_id: str = Field(min_length=1, max_length=200)
    event: str = Field(min_length=1, max_length=200)
    timestamp: Moment
    seats: int | None = Field(None, ge=0, le=10_000_000)
    properties: dict[str, Any] = Field(default_factory=dict)
    # The event's own id: the same event re-sent in another delivery is counted once.
    event_id: str | None = Field(None, min_length=1, max_length=200)


_PARTIAL_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


class JobChangeIn(BaseModel):
    """Our neutral job-change payload (reference/job-change-sources.md section 3)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=300)
    source: str = Field("manual", min_length=1, max_length=60)
    change_type: ChangeType
    detected_at: Moment | None = None
    email: str | None = Field(None, max_length=320)
    linkedin_url: str | None = Field(None, max_length=500)
    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None
    previous_company_name: str | None = None
    previous_company_domain: str | None = None
    previous_job_title: str | None = None
    previous_job_end_date: str | None = None
    current_company_name: str | None = None
    current_company_domain: str | None = None
    current_job_title: str | None = None
    current_job_start_date: str | None = None
    current_email: str | None = None
    relationship_type: str | None = None
    is_champion: bool = False
    persona: str | None = None
    # Our extension: the product's own account ids, when the sender knows them.
    previous_account_id: AccountId | None = None
    current_account_id: AccountId | None = None


def _check_job_change(parsed: JobChangeIn, prefix: str) -> None:
    """Rules across fields, raised with the field a sender should fix."""
    if not (parsed.email or parsed.linkedin_url):
        msg = "is required when linkedin_url is missing: we need one of them to find the person"
        raise PayloadError(JOB_CHANGES, _join(prefix, "email"), msg)
    for name in ("previous_job_end_date", "current_job_start_date"):
        value = getattr(parsed, name)
        if value and not _PARTIAL_DATE.match(value) and not _is_iso_datetime(value):
            msg = f"expected YYYY, YYYY-MM, YYYY-MM-DD or ISO-8601, got {value!r}"
            raise PayloadError(JOB_CHANGES, _join(prefix, name), msg)
    for name, value in (parsed.model_extra or {}).items():
        problem = kept_value_problem(value)
        if problem:  # kept in the job's `raw`: it must pickle and round-trip as JSON
            raise PayloadError(JOB_CHANGES, _join(prefix, name), problem)


def _is_iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class UsageEvent:
    account_id: str
    user_id: str
    event: str
    occurred_at: datetime
    seats: int | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    event_id: str | None = None  # the sender's id for the event, when it gives one


@dataclass(frozen=True, slots=True)
class JobChanged:
    """A person changed jobs; `previous_*` is the account they left, `current_*` where they went."""

    event_id: str
    source: str
    change_type: ChangeType
    detected_at: datetime
    email: str | None
    full_name: str
    previous_company_name: str | None
    previous_company_domain: str | None
    previous_job_title: str | None
    current_company_name: str | None
    current_company_domain: str | None
    current_job_title: str | None
    relationship_type: str | None
    is_champion: bool
    previous_account_id: str | None = None
    current_account_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def was_champion(self, labels: Iterable[str] = ("champion",)) -> bool:
        """Flagged a champion by the source, or with one of these relationship labels."""
        wanted = {label.lower() for label in labels}
        return self.is_champion or (self.relationship_type or "").lower() in wanted

    @property
    def dedupe_id(self) -> str:
        """Stable id for (source, event_id), safe for RQ job ids and Redis keys."""
        digest = hashlib.sha256(f"{self.source}\x00{self.event_id}".encode()).hexdigest()
        return digest[:40]

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "source": self.source,
            "change_type": self.change_type.value,
            "detected_at": self.detected_at.isoformat(),
            "email": self.email,
            "full_name": self.full_name,
            "previous_company_name": self.previous_company_name,
            "previous_company_domain": self.previous_company_domain,
            "previous_job_title": self.previous_job_title,
            "current_company_name": self.current_company_name,
            "current_company_domain": self.current_company_domain,
            "current_job_title": self.current_job_title,
            "relationship_type": self.relationship_type,
            "is_champion": self.is_champion,
            "previous_account_id": self.previous_account_id,
            "current_account_id": self.current_account_id,
            "raw": dict(self.raw),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobChanged:
        values = dict(data)
        values["change_type"] = ChangeType(values["change_type"])
        values["detected_at"] = datetime.fromisoformat(values["detected_at"])
        return cls(**values)


def parse_usage(body: object, now: datetime, max_events: int) -> list[UsageEvent]:
    """Parse one event or a JSON array of them; raise PayloadError naming the first bad field.
    An `event_id` repeated within the body counts once (its first event)."""
    return [
        UsageEvent(
            parsed.account_id,
            parsed.user_id,
            parsed.event,
            occurred_at,
            parsed.seats,
            parsed.properties,
            parsed.event_id,
        )
        for parsed, occurred_at in _checked_usage(body, now, max_events)
    ]


def count_usage(body: object, now: datetime, max_events: int) -> tuple[int, int]:
    """What the web edge answers for a body it accepts: (events, accounts), checked exactly as
    parse_usage checks them, without building the events the fold builds later (the hot path:
    the moments are compared in bulk, and walked one by one only to name a bad one)."""
    parsed = [item for _, item in _validated(USAGE, body, UsageEventIn, max_events, "events")]
    moments = [item.timestamp for item in parsed]
    if max(moments) > now + MAX_CLOCK_SKEW or min(moments) < now - MAX_EVENT_AGE:
        for _ in _checked_usage(body, now, max_events):  # raises, naming the first bad one
            pass
    ids = {item.event_id for item in parsed if item.event_id is not None}
    without_id = sum(item.event_id is None for item in parsed)
    return len(ids) + without_id, len({item.account_id for item in parsed})


def _checked_usage(
    body: object, now: datetime, max_events: int
) -> Iterator[tuple[UsageEventIn, datetime]]:
    """Each valid event with its moment in UTC, a repeated `event_id` once; PayloadError at
    the first event whose moment is in the future or too old for live usage."""
    ids: set[str] = set()
    for prefix, parsed in _validated(USAGE, body, UsageEventIn, max_events, "events"):
        if parsed.event_id is not None:
            if parsed.event_id in ids:
                continue
            ids.add(parsed.event_id)
        occurred_at = parsed.timestamp.astimezone(UTC)
        if occurred_at > now + MAX_CLOCK_SKEW:
            msg = f"is in the future ({parsed.timestamp.isoformat()}); send seconds-based ISO-8601"
            raise PayloadError(USAGE, _join(prefix, "timestamp"), msg)
        if occurred_at < now - MAX_EVENT_AGE:
            msg = (
                f"is more than {MAX_EVENT_AGE.days} days old; send older days as daily rollups "
                "with `integration import usage`"
            )
            raise PayloadError(USAGE, _join(prefix, "timestamp"), msg)
        yield parsed, occurred_at


def parse_job_changes(body: object, now: datetime, max_events: int) -> list[JobChanged]:
    """Parse one job-change object or an array of them."""
    changes = []
    for prefix, parsed in _validated(JOB_CHANGES, body, JobChangeIn, max_events, "job changes"):
        _check_job_change(parsed, prefix)
        changes.append(_job_changed(parsed, now))
    return changes


def _validated(
    source: str, body: object, model: type[PayloadT], max_items: int, noun: str
) -> Iterator[tuple[str, PayloadT]]:
    """Each item of one object or a JSON array, validated, with its path prefix (`[3]`)."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise PayloadError(source, "(body)", "the batch is empty")
    if len(items) > max_items:
        msg = f"a batch holds at most {max_items} {noun}, got {len(items)}"
        raise PayloadError(source, "(body)", msg)
    prefix = "[{}]" if isinstance(body, list) else ""
    try:
        # The whole batch in one call into pydantic-core: a 100-event body validates several
        # times faster than item by item, which is kept for naming the first bad item.
        parsed = _batch_of(model).validate_python(items)
    except ValidationError:
        for index, item in enumerate(items):
            try:
                model.model_validate(item)
            except ValidationError as exc:
                raise _payload_error(source, prefix.format(index), exc) from exc
        raise
    for index, item in enumerate(parsed):
        yield prefix.format(index), item


@cache
def _batch_of(model: type[PayloadT]) -> TypeAdapter[list[PayloadT]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _job_changed(parsed: JobChangeIn, now: datetime) -> JobChanged:
    name = parsed.full_name or " ".join(p for p in (parsed.first_name, parsed.last_name) if p)
    email = parsed.email.lower() if parsed.email else None
    return JobChanged(
        event_id=parsed.event_id,
        source=parsed.source.lower(),
        change_type=parsed.change_type,
        detected_at=(parsed.detected_at or now).astimezone(UTC),
        email=email,
        full_name=name or email or parsed.linkedin_url or "unknown person",
        previous_company_name=parsed.previous_company_name,
        previous_company_domain=_domain(parsed.previous_company_domain),
        previous_job_title=parsed.previous_job_title,
        current_company_name=parsed.current_company_name,
        current_company_domain=_domain(parsed.current_company_domain),
        current_job_title=parsed.current_job_title,
        relationship_type=parsed.relationship_type,
        is_champion=parsed.is_champion,
        previous_account_id=parsed.previous_account_id,
        current_account_id=parsed.current_account_id,
        raw=dict(parsed.model_extra or {}),
    )


def _domain(value: str | None) -> str | None:
    if not value:
        return None
    value = value.lower().removeprefix("https://").removeprefix("http://").removeprefix("www.")
    return value.split("/", 1)[0] or None


def _join(prefix: str, field_path: str) -> str:
    return f"{prefix}.{field_path}" if prefix else field_path


def _payload_error(source: str, prefix: str, exc: ValidationError) -> PayloadError:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "missing":
        message = "is required"
    return PayloadError(source, _join(prefix, loc) if loc else (prefix or "(body)"), message)


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
