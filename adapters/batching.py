"""Cutting a list of records into the CRM's batch size, sending batch by batch, and finding the
records that made the CRM refuse a whole batch.

A CRM may refuse a whole batch as invalid (HTTP 400) for what one record holds, writing none of
the others. Such a batch is split: records holding a field the CRM named as unknown are refused
at once (every record naming it would be), and the rest are sent again in halves, so one bad
record among 100 costs a couple of calls, or about 2*log2(100) when the CRM names nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from adapters.protocol import BatchOutcome
from integration.errors import CrmError, CrmFatalError, CrmRetriableError

T = TypeVar("T")
R = TypeVar("R")
# Refusals that are about us, not the records (bad token, missing scope): every later batch
# would be refused the same way, so the caller hears it at once instead of per record.
ACCOUNT_REFUSALS = frozenset({401, 403})
# Answers that say the body we sent is invalid; one record of a batch can cause them.
INVALID_REQUEST_STATUSES = frozenset({400, 422})


class InvalidRecordsError(CrmFatalError):
    """The CRM refused a request as invalid (400/422), perhaps for one record of a batch."""

    def __init__(
        self,
        crm: str,
        operation: str,
        reason: str,
        status: int,
        unknown_fields: Collection[str] = (),
    ) -> None:
        super().__init__(crm, operation, reason, status)
        self.reason = reason  # the CRM's own words, given to each record found bad
        self.unknown_fields = frozenset(unknown_fields)  # fields the CRM says do not exist


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unknown(error: CrmError) -> BatchOutcome:
    """A record whose batch ran into a wait or a timeout: perhaps created, perhaps not (surely
    not after a rate limit, which the CRM answers before doing anything)."""
    unsent = isinstance(error, CrmRetriableError) and error.nothing_done
    return BatchOutcome(None, str(error), retriable=True, unsent=unsent)


@dataclass
class Splitter(Generic[T, R]):
    """Sends one batch and gives one result per record, in order. A batch refused whole as
    invalid is split until each valid record has gone through and each bad one has `refuse`d
    with the CRM's words.

    With `unsent` (creates, where a record already made must keep its id), no error escapes
    once a record may have gone through: a retriable error (a wait the transport could not
    hold, a timeout) marks the records not yet through and every later batch `unsent`; a
    refusal of a whole part refuses that part only, and a refusal about us (401/403: every
    later part would meet it) refuses every later part too, unsent. Without it (updates, which
    may be sent again), errors other than a record's refusal are raised."""

    send: Callable[[Sequence[T]], Sequence[R]]
    refuse: Callable[[T, str], R]
    fields_of: Callable[[T], Collection[str]]
    unsent: Callable[[T, CrmRetriableError], R] | None = None
    stopped: CrmRetriableError | None = None
    refused: CrmFatalError | None = None  # a refusal about us: nothing more is sent

    def __call__(self, items: Sequence[T]) -> list[R]:
        if self.unsent is not None and self.stopped is not None:
            return [self.unsent(item, self.stopped) for item in items]
        if self.unsent is not None and self.refused is not None:
            return [self.refuse(item, str(self.refused)) for item in items]
        try:
            return list(self.send(items))
        except CrmRetriableError as exc:
            if self.unsent is None:
                raise
            self.stopped = exc
            return [self.unsent(item, exc) for item in items]
        except InvalidRecordsError as exc:
            return self._split(items, exc)
        except CrmFatalError as exc:
            if self.unsent is None:
                raise
            if exc.status in ACCOUNT_REFUSALS:
                self.refused = exc
            return [self.refuse(item, str(exc)) for item in items]

    def _split(self, items: Sequence[T], error: InvalidRecordsError) -> list[R]:
        if len(items) == 1:
            return [self.refuse(items[0], error.reason)]
        results: dict[int, R] = {
            i: self.refuse(item, error.reason)
            for i, item in enumerate(items)
            if error.unknown_fields.intersection(self.fields_of(item))
        }
        rest = [i for i in range(len(items)) if i not in results]
        middle = len(rest) // 2
        parts = [rest] if results else [rest[:middle], rest[middle:]]
        for part in filter(None, parts):
            answers = self([items[i] for i in part])
            results.update(zip(part, answers, strict=True))
        return [results[i] for i in range(len(items))]


def create_in_batches(
    items: Sequence[T],
    size: int,
    send: Callable[[Sequence[T]], list[BatchOutcome]],
    fields_of: Callable[[T], Collection[str]] = lambda _: (),
) -> list[BatchOutcome]:
    """One outcome per item, in order. `send` creates one batch (through the transport, which
    has already waited and retried what it may). After a retriable failure no further batch
    is sent: the CRM is throttling or down, and the rest are reported as worth a retry. A batch
    refused whole as invalid is split (Splitter); another refusal of a whole batch marks its
    records refused and the next batch is still sent. A refusal about us (401/403) before
    anything was created is raised, so the caller hears it at once; after some records were
    created, they keep their ids and the rest are refused with it."""
    splitter = Splitter(
        send,
        lambda _, reason: BatchOutcome(None, reason),
        fields_of,
        lambda _, error: unknown(error),
    )
    outcomes: list[BatchOutcome] = []
    for batch in chunks(items, size):
        outcomes.extend(splitter(batch))
    if splitter.refused is not None and not any(outcome.crm_id for outcome in outcomes):
        raise splitter.refused
    return outcomes
