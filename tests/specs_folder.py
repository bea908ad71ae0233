"""Where the vendors' API descriptions are, and what the tests do without them.

HubSpot's OpenAPI documents and Salesforce's Postman collection are large and not ours, so the
project does not hold them: tests read them from $VENDOR_SPECS_DIR, by default the team's
shared/specs beside the project. Without them the tests marked `vendor_specs` are skipped and
the fake CRMs take requests without checking them against the specs. With REQUIRE_VENDOR_SPECS=1
(as CI runs) a missing folder stops the session, and a skipped `vendor_specs` test fails it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = PROJECT_ROOT / ".." / "shared" / "specs"
MARKER = "vendor_specs"
HOW = "put the team's shared/ folder beside the project, or set VENDOR_SPECS_DIR"


def vendor_specs_dir() -> Path:
    return Path(os.environ.get("VENDOR_SPECS_DIR") or DEFAULT_DIR)


def vendor_specs_present() -> bool:
    folder = vendor_specs_dir()
    return (folder / "hubspot").is_dir() and (folder / "salesforce").is_dir()


def absent(consequence: str) -> str:
    """The one line that says the specs are missing, what that costs, and how to get them."""
    return f"vendor specs: none at {vendor_specs_dir()}; {consequence} ({HOW})"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("REQUIRE_VENDOR_SPECS") != "1":
        return
    if not vendor_specs_present():
        raise pytest.UsageError(absent("REQUIRE_VENDOR_SPECS=1 makes that an error"))
    config.pluginmanager.register(_RequireVendorSpecs(), "require_vendor_specs")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if vendor_specs_present():
        return
    skip = pytest.mark.skip(reason=absent("this test checks against them"))
    for item in items:
        if item.get_closest_marker(MARKER):
            item.add_marker(skip)


def pytest_report_collectionfinish(items: list[pytest.Item]) -> list[str]:
    # Printed after collection rather than in the header: addopts has -q, which hides the header.
    if vendor_specs_present():
        return []
    count = sum(1 for item in items if item.get_closest_marker(MARKER))
    tests = "test" if count == 1 else "tests"
    return [
        absent(
            f"{count} spec contract {tests} skipped and the fake CRMs do not check requests "
            "against the specs"
        )
    ]


class _RequireVendorSpecs:
    """With REQUIRE_VENDOR_SPECS=1, a `vendor_specs` test that ends skipped fails the session."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and MARKER in report.keywords:
            self.skipped.append(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.skipped:
            return
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"REQUIRE_VENDOR_SPECS=1 but {len(self.skipped)} vendor_specs tests were "
                f"skipped: {', '.join(self.skipped)}"
            )
