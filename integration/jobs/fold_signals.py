"""The audit trail's usage and Segment signals, as a fold consumer writes them: each fold's
signal per account is summed here with the account's next ones and written once it has waited
`every_seconds` (WRITE_EVERY_SECONDS, never more than half of `evaluation.settle_seconds`), or
at once when the consumer finds the stream empty; integration/store/history.py then merges it
into the account's newest signal while that is the same source's (signals have a stream of their
own, capped by `history.keep_signals`, so they never push out the rest of the trail).

Why: under load a fold runs every few milliseconds and touches thousands of accounts; a script
call per account per fold for the trail cost 13-17% of the fold's rate with every event from
another account (in-process, 2,000 deliveries of 100 events). Held, each account costs one
call per WRITE_EVERY_SECONDS at most. The signal still lands before the account's evaluation,
which waits until the account has had no usage for `evaluation.settle_seconds`. What a consumer
holds when it dies is lost: the trail is never the only copy (the rollups are).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from integration.config.schema import History
from integration.store import history
from integration.store.cluster import StateRedis
from integration.store.history import DELIVERY_IDS_KEPT, Received

WRITE_EVERY_SECONDS = 30.0


class SignalBuffer:
    """Per consumer: the signals held, by account, and since when (the consumer's clock)."""

    def __init__(
        self,
        keep: History,
        every_seconds: float = WRITE_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep, self.every, self.clock = keep, every_seconds, clock
        self.pending: dict[str, Received] = {}
        self.held_since: dict[str, float] = {}

    def add(self, redis: StateRedis, received: Sequence[Received]) -> None:
        """One fold's signals, each summed with what its account holds; then what has waited
        long enough is written, in one round trip."""
        now = self.clock()
        out: list[Received] = []
        for item in received:
            held = self.pending.get(item.account_id)
            if held is not None and held.source != item.source:
                out.append(held)  # another source: an entry of its own
                held = None
                self.held_since[item.account_id] = now
            self.pending[item.account_id] = combined(held, item) if held else item
            self.held_since.setdefault(item.account_id, now)
        due = [a for a, since in self.held_since.items() if now - since >= self.every]
        out += [self._take(account) for account in due]
        history.record_received(redis, out, self.keep)

    def flush(self, redis: StateRedis) -> None:
        """Write everything held (the stream is empty, or the consumer stops)."""
        out = [self._take(account) for account in list(self.pending)]
        history.record_received(redis, out, self.keep)

    def _take(self, account: str) -> Received:
        self.held_since.pop(account, None)
        return self.pending.pop(account)


def every_seconds(settle_seconds: int) -> float:
    """How long a consumer holds signals: WRITE_EVERY_SECONDS, but under half the time an
    account waits for its evaluation, so the signal is in the trail first."""
    return min(WRITE_EVERY_SECONDS, settle_seconds / 2)


def combined(first: Received, then: Received) -> Received:
    """Two folds of one account and source as one signal."""
    return replace(
        then,
        events=first.events + then.events,
        delivery_ids=[*first.delivery_ids, *then.delivery_ids][-DELIVERY_IDS_KEPT:],
        deliveries=first.count + then.count,
        since=first.since or first.at,
    )
