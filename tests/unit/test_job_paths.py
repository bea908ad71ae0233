"""Every job the service queues, by the path it is queued under, resolves to a function: the
current paths, and the ones jobs queued before the jobs moved into rooms still carry."""

from __future__ import annotations

import pytest
from rq.utils import import_attribute

from integration.jobs import queues

CURRENT = [
    f"{queues.EVALUATION_JOBS}.evaluate_account",
    f"{queues.EVALUATION_JOBS}.evaluate_dirty_accounts",
    f"{queues.EVALUATION_JOBS}.process_job_change",
    f"{queues.CRM_CHANGE_JOBS}.process_crm_change",
    f"{queues.CRM_CHANGE_JOBS}.process_record_snapshot",
]
BEFORE_THE_MOVE = [
    "integration.jobs.evaluate_account",
    "integration.jobs.evaluate_dirty_accounts",
    "integration.jobs.evaluate_all_accounts",
    "integration.jobs.sweep_accounts",
    "integration.jobs.process_job_change",
    "integration.change_jobs.process_crm_change",
    "integration.change_jobs.process_record_snapshot",
]


@pytest.mark.parametrize("path", CURRENT + BEFORE_THE_MOVE)
def test_a_queued_job_path_resolves_to_its_function(path: str) -> None:
    function = import_attribute(path)
    assert callable(function)
    assert function.__name__ == path.rsplit(".", 1)[1]


def test_an_unknown_job_name_is_still_an_error() -> None:
    with pytest.raises(ValueError, match="Invalid attribute name: no_such_job"):
        import_attribute("integration.jobs.no_such_job")
