"""Cutting a list of records into the CRM's batch size, and creating them batch by batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from adapters.protocol import BatchOutcome
from integration.errors import CrmError, CrmFatalError, CrmRetriableError

T = TypeVar("T")
# Refusals that are about us, not the records (bad token, missing scope): every later batch
# would be refused the same way, so the caller hears it at once instead of per record.
ACCOUNT_REFUSALS = frozenset({401, 403})


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unknown(error: CrmError) -> BatchOutcome:
    """A record whose batch ran into a wait or a timeout: perhaps created, perhaps not."""
    return BatchOutcome(None, str(error), retriable=True)


def create_in_batches(
    items: Sequence[T], size: int, send: Callable[[Sequence[T]], list[BatchOutcome]]
) -> list[BatchOutcome]:
    """One outcome per item, in order. `send` creates one batch (through the transport, which
    has already waited and retried what it may). After a retriable failure no further batch
    is sent: the CRM is throttling or down, and the rest are reported as worth a retry. A
    refusal of one whole batch marks its records refused and the next batch is still sent."""
    outcomes: list[BatchOutcome] = []
    stopped: CrmRetriableError | None = None
    for batch in chunks(items, size):
        if stopped is not None:
            outcomes.extend(unknown(stopped) for _ in batch)
            continue
        try:
            outcomes.extend(send(batch))
        except CrmRetriableError as exc:
            stopped = exc
            outcomes.extend(unknown(exc) for _ in batch)
        except CrmFatalError as exc:
            if exc.status in ACCOUNT_REFUSALS:
                raise
            outcomes.extend(BatchOutcome(None, str(exc)) for _ in batch)
    return outcomes
