"""Until the next release: CRM-change jobs queued before they moved to integration.jobs.crm_changes.

RQ resolves a queued job by the module path it was queued under; this keeps those paths working.
"""

from integration.jobs.crm_changes import process_crm_change, process_record_snapshot

__all__ = ["process_crm_change", "process_record_snapshot"]
