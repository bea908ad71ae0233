"""docs/playbooks.md, the admin's playbook guide, cannot drift from the code: every template
variable with its attributes, every reason code with its title and details keys, and every
shipped playbook are in it, and its YAML examples resolve as a config would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.config.schema import Config
from integration.risk.catalogue import REASONS
from playbooks.catalogue import resolve_playbooks
from playbooks.engine import shipped_definitions
from playbooks.templates import VARIABLES

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "playbooks.md"
# The attributes of list variables, as template_context builds their items.
LIST_ITEMS = {
    "other_reasons": ("code", "key", "text", "severity", "details", "title"),
    "reasons": ("code", "key", "text", "severity", "details", "title"),
    "people": ("name", "email", "title", "code", "text", "is_trigger"),
}


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The text under `## heading`, up to the next heading of that level."""
    parts = re.split(r"^## ", guide(), flags=re.M)
    found = [part for part in parts if part.startswith(heading + "\n")]
    assert len(found) == 1, f"docs/playbooks.md needs one section '## {heading}'"
    return found[0]


def table_row(heading: str, first_cell: str) -> str:
    """The one table row of a section whose first cell is `first_cell` (backticks included)."""
    rows = [line for line in section(heading).splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, f"'## {heading}' needs one table row for {first_cell}"
    return rows[0]


def yaml_blocks() -> list[Any]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", guide(), re.S)]


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_every_template_variable_has_a_row_with_its_attributes(name: str) -> None:
    row = table_row("Template variables", f"`{name}`")
    attributes = VARIABLES[name]
    if attributes is not None:
        missing = [a for a in sorted(attributes) if f"`{name}.{a}`" not in row]
    else:
        missing = [a for a in LIST_ITEMS.get(name, ()) if f"`{a}`" not in row]
    assert not missing, f"the {name} row does not name {missing}"


@pytest.mark.parametrize("code", sorted(REASONS))
def test_every_reason_code_has_a_row_with_its_title_and_details_keys(code: str) -> None:
    row = table_row("Reason codes", f"`{code}`")
    info = REASONS[code]
    assert f"| {info.title} " in row
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    keys = set(re.findall(r"`([a-z0-9_]+)`", cells[-1]))
    assert keys == set(info.details)


def test_every_shipped_playbook_has_a_row() -> None:
    for name in shipped_definitions():
        assert table_row("The shipped playbooks", f"`{name}`")


def test_the_yaml_examples_are_configs_and_their_playbooks_resolve() -> None:
    blocks = yaml_blocks()
    with_playbooks = [block for block in blocks if "playbooks" in block]
    assert len(with_playbooks) >= 3
    for block in blocks:
        config = Config.model_validate(block)  # secrets are checked on loading, not here
        if "playbooks" in block:
            names = {book.name for book in resolve_playbooks(config)}
            enabled = {name for name, entry in config.playbooks.items() if entry.enabled}
            assert enabled <= names


def test_the_example_task_bodies_do_not_break_sentences() -> None:
    for block in yaml_blocks():
        for entry in (block.get("playbooks") or {}).values():
            for step in entry.get("steps") or []:
                for action in step["actions"]:
                    for kind in ("task", "note", "email"):
                        body = (action.get(kind) or {}).get("body", "")
                        for line in body.splitlines():
                            text = re.sub(r"\{[{%].*?[%}]\}", "x", line).strip()
                            assert not text or text[-1] in ".:!?x", line
