"""tests/specs_folder.py: without the vendors' specs, their tests are skipped and say why; CI,
which requires them, fails instead. Each case runs pytest on a tiny test file in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.specs_folder import PROJECT_ROOT

TWO_TESTS = """
import pytest

@pytest.mark.vendor_specs
def test_checks_against_the_specs():
    pass

def test_needs_no_specs():
    pass
"""
HOW = "(put the team's shared/ folder beside the project, or set VENDOR_SPECS_DIR)"


def run_pytest(
    tmp_path: Path, specs: Path, tests: str = TWO_TESTS, require: bool = False
) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_tiny.py"
    test_file.write_text(tests)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["VENDOR_SPECS_DIR"] = str(specs)
    env["REQUIRE_VENDOR_SPECS"] = "1" if require else ""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(PROJECT_ROOT / "pyproject.toml"),
        "--rootdir",
        str(tmp_path),
        "-p",
        "tests.specs_folder",
        "-p",
        "no:cacheprovider",
        "-rs",
        str(test_file),
    ]
    return subprocess.run(  # noqa: S603 - our own interpreter running pytest
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )


def specs_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    for vendor in ("hubspot", "salesforce"):
        (folder / vendor).mkdir(parents=True)
    return folder


def test_without_the_specs_their_tests_are_skipped_and_one_line_says_why(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_pytest(tmp_path, empty)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("vendor specs:")] == [
        f"vendor specs: none at {empty}; 1 spec contract test skipped and the fake CRMs do not "
        f"check requests against the specs {HOW}"
    ]
    assert (
        f"test_tiny.py:4: vendor specs: none at {empty}; this test checks against them {HOW}"
        in result.stdout
    )
    assert "1 passed, 1 skipped" in lines[-1]


def test_with_the_specs_their_tests_run_and_nothing_is_said(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, specs_folder(tmp_path), require=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "vendor specs" not in result.stdout
    assert "2 passed" in result.stdout.splitlines()[-1]


def test_when_required_missing_specs_stop_the_session_at_once(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, tmp_path / "nowhere", require=True)
    assert result.returncode == 4  # pytest's usage error
    assert result.stderr.strip() == (
        f"ERROR: vendor specs: none at {tmp_path / 'nowhere'}; REQUIRE_VENDOR_SPECS=1 makes that "
        f"an error {HOW}"
    )
    assert "passed" not in result.stdout


def test_when_required_a_skipped_spec_test_fails_the_session(tmp_path: Path) -> None:
    tests = TWO_TESTS.replace(
        "@pytest.mark.vendor_specs", '@pytest.mark.vendor_specs\n@pytest.mark.skip(reason="later")'
    )
    result = run_pytest(tmp_path, specs_folder(tmp_path), tests, require=True)
    assert result.returncode == 1
    assert (
        "REQUIRE_VENDOR_SPECS=1 but 1 vendor_specs tests were skipped: "
        "test_tiny.py::test_checks_against_the_specs" in result.stdout
    )
