from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from integration.errors import PayloadError
from integration.signals.events import ChangeType, parse_job_changes, parse_usage
from integration.signals.segment import lenient_timestamp

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EVENT = {
    "account_id": "acme",
    "user_id": "u1",
    "event": "login",
    "timestamp": "2026-11-23T10:00:00Z",
}


def test_one_event_or_an_array_of_events_is_accepted() -> None:
    assert len(parse_usage(EVENT, NOW, 10)) == 1
    assert len(parse_usage([EVENT, EVENT | {"user_id": "u2", "seats": 5}], NOW, 10)) == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**EVENT, "account_id": ""}, "account_id", "String should have at least 1 character"),
        ({k: v for k, v in EVENT.items() if k != "user_id"}, "user_id", "is required"),
        (
            {**EVENT, "timestamp": "2026-11-23T10:00:00"},
            "timestamp",
            "Input should have timezone info",
        ),
        (
            {**EVENT, "timestamp": "yesterday"},
            "timestamp",
            "Input should be a valid datetime or date, input is too short",
        ),
        (
            {**EVENT, "timestamp": "2027-01-01T00:00:00Z"},
            "timestamp",
            "is in the future (2027-01-01T00:00:00+00:00); send seconds-based ISO-8601",
        ),
        ({**EVENT, "seats": -1}, "seats", "Input should be greater than or equal to 0"),
        ([EVENT, {**EVENT, "event": None}], "[1].event", "Input should be a valid string"),
        ([], "(body)", "the batch is empty"),
        ("just text", "(body)", "Input should be a valid dictionary or instance of UsageEventIn"),
    ],
)
def test_bad_usage_names_the_field(body: Any, field: str, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_usage(body, NOW, 10)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_too_many_events_in_one_request_is_refused() -> None:
    with pytest.raises(PayloadError, match="a batch holds at most 2 events, got 3"):
        parse_usage([EVENT] * 3, NOW, 2)


CHANGE = {
    "event_id": "e1",
    "change_type": "left_company",
    "email": "Ada@OldCo.example",
    "previous_company_domain": "https://www.OldCo.example/about",
    "custom_score": 7,
}


def test_job_change_is_normalised_and_keeps_unknown_keys() -> None:
    [change] = parse_job_changes(CHANGE, NOW, 10)
    assert change.change_type is ChangeType.LEFT_COMPANY
    assert change.email == "ada@oldco.example"
    assert change.previous_company_domain == "oldco.example"
    assert change.detected_at == NOW
    assert change.raw == {"custom_score": 7}
    assert change.full_name == "ada@oldco.example"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({k: v for k, v in CHANGE.items() if k != "event_id"}, "event_id", "is required"),
        (
            {**CHANGE, "change_type": "fired"},
            "change_type",
            "Input should be 'company_change', 'promotion' or 'left_company'",
        ),
        (
            {k: v for k, v in CHANGE.items() if k != "email"},
            "email",
            "is required when linkedin_url is missing: we need one of them to find the person",
        ),
        (
            {**CHANGE, "current_job_start_date": "March"},
            "current_job_start_date",
            "expected YYYY, YYYY-MM, YYYY-MM-DD or ISO-8601, got 'March'",
        ),
        (
            [CHANGE, {**CHANGE, "is_champion": "perhaps"}],
            "[1].is_champion",
            "Input should be a valid boolean, unable to interpret input",
        ),
    ],
)
def test_bad_job_change_names_the_field(body: Any, field: str, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_job_changes(body, NOW, 10)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_dedupe_id_is_the_same_for_the_same_source_and_event() -> None:
    [first] = parse_job_changes(CHANGE, NOW, 10)
    [again] = parse_job_changes({**CHANGE, "email": "other@x.example"}, NOW, 10)
    [other_source] = parse_job_changes({**CHANGE, "source": "pdl"}, NOW, 10)
    assert first.dedupe_id == again.dedupe_id != other_source.dedupe_id


@pytest.mark.parametrize(
    ("sent", "meant"),
    [
        ("2024-1-5T00:00:01.276Z", datetime(2024, 1, 5, 0, 0, 1, 276000, UTC)),  # Segment's docs
        ("2024-01-05T01:00:00+01:00", datetime(2024, 1, 5, 0, 0, tzinfo=UTC)),
        ("2024-01-05T00:00:00", datetime(2024, 1, 5, tzinfo=UTC)),  # no zone: taken as UTC
    ],
)
def test_segment_timestamps_in_the_shapes_segment_sends_are_read(
    sent: str, meant: datetime
) -> None:
    assert lenient_timestamp(sent) == meant


@pytest.mark.parametrize("sent", ["2024-13-05T00:00:00Z", "yesterday", 1704412800, None])
def test_segment_timestamps_that_name_no_moment_are_refused(sent: object) -> None:
    assert lenient_timestamp(sent) is None
