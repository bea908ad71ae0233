"""HubSpot's batch create: trace ids on the way out, one outcome per input on the way back.

Batch create is all or nothing unless each input carries a unique `objectWriteTraceId`; then a
refused input comes back as an error naming its trace id (HTTP 207) and the rest are created
(https://developers.hubspot.com/docs/api-reference/error-handling, "Multi-status errors").
HubSpot's own example answer names no trace id on the created records, so those are matched
by our task key where there is one, and otherwise in request order (UNCONFIRMED that HubSpot
keeps it; batch read does not).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.protocol import BatchOutcome

NEITHER = "HubSpot's answer neither created nor refused this record"


def traced(bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The inputs of one batch, each with a trace id unique within it (its position)."""
    return [{**body, "objectWriteTraceId": str(index)} for index, body in enumerate(bodies)]


def outcomes(
    inputs: Sequence[Mapping[str, Any]],
    response: Any,  # noqa: ANN401 - the SDK's untyped BatchResponse model
    key_property: str | None,
) -> list[BatchOutcome]:
    """One outcome per input of a batch create, in input order."""
    found: list[BatchOutcome | None] = [None] * len(inputs)
    position = {str(item["objectWriteTraceId"]): i for i, item in enumerate(inputs)}
    for error in getattr(response, "errors", None) or []:
        message = f"{error.message} [{error.category}]"
        for trace in (error.context or {}).get("objectWriteTraceId") or []:
            if str(trace) in position:
                found[position[str(trace)]] = BatchOutcome(None, message)
    by_key: dict[str, list[int]] = defaultdict(list)
    if key_property:
        for i, item in enumerate(inputs):
            key = item["properties"].get(key_property)
            if key and found[i] is None:
                by_key[key].append(i)
    unplaced = []
    for record in response.results or []:
        index = _place(record, position, by_key, key_property)
        if index is None or found[index] is not None:
            unplaced.append(record)
        else:
            found[index] = BatchOutcome(str(record.id))
    rest = iter(unplaced)
    for i, outcome in enumerate(found):
        if outcome is None:
            record = next(rest, None)
            found[i] = (
                BatchOutcome(str(record.id))
                if record is not None
                else BatchOutcome(None, NEITHER, retriable=True)
            )
    return [outcome for outcome in found if outcome is not None]


def _place(
    record: Any,  # noqa: ANN401 - the SDK's untyped SimplePublicObject
    position: Mapping[str, int],
    by_key: dict[str, list[int]],
    key_property: str | None,
) -> int | None:
    trace = getattr(record, "object_write_trace_id", None)
    if trace is not None and str(trace) in position:
        return position[str(trace)]
    key = (record.properties or {}).get(key_property) if key_property else None
    waiting = by_key.get(key) if key else None
    return waiting.pop(0) if waiting else None
