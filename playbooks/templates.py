"""Task, note and message text: Jinja2 templates rendered in a sandbox, checked before they run.

An admin's template that names a variable we do not pass would render as an empty string in
front of a rep; `problems()` finds that (and syntax errors) when the config is validated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

# Task bodies are plain text (HubSpot task bodies, Salesforce's Description), not HTML.
ENVIRONMENT = SandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)  # noqa: S701

# Every variable a template can use, with the attributes it has (None: a plain value or a list
# whose items are looked at freely). docs/playbooks.md lists the same (a test checks it).
VARIABLES: dict[str, frozenset[str] | None] = {
    "account": frozenset({"name", "crm_id", "owner_id", "domain", "product_account_id", "facts"}),
    "reason": frozenset({"code", "key", "text", "severity", "details", "title", "opportunity"}),
    "other_reasons": None,
    "reasons": None,
    "people": None,
    "risk": frozenset({"level", "score"}),
    "trend": frozenset({"label", "sparkline", "values", "first", "last", "weeks"}),
    "sparkline": None,
    "playbook": frozenset({"name", "title"}),
    "step": frozenset({"name", "number"}),
    "run": frozenset({"started_on"}),
    "today": None,
    "record_url": None,
}


def compile_template(source: str) -> Template:
    return ENVIRONMENT.from_string(source)


def problems(source: str, detail_names: frozenset[str], fact_names: frozenset[str]) -> list[str]:
    """What is wrong with a template: a syntax error, an unknown variable or attribute, a
    reason detail the trigger's reasons never carry, a fact the config does not map."""
    try:
        tree = ENVIRONMENT.parse(source)
        undeclared = meta.find_undeclared_variables(tree)
        ENVIRONMENT.from_string(source)  # an unknown filter or test fails here
    except TemplateSyntaxError as exc:  # TemplateAssertionError included
        return [f"template does not compile (line {exc.lineno}): {exc.message}"]
    found = []
    for name in sorted(undeclared):
        if name not in VARIABLES:
            found.append(f"unknown template variable {name!r} (known: {', '.join(VARIABLES)})")
    for chain in _attribute_chains(tree):
        root, *path = chain
        attributes = VARIABLES.get(root)
        if attributes is None or not path:
            continue
        if path[0] not in attributes:
            found.append(f"{root} has no {path[0]!r} (it has: {', '.join(sorted(attributes))})")
        elif path[0] == "details" and len(path) > 1 and path[1] not in detail_names:
            known = ", ".join(sorted(detail_names)) or "none"
            found.append(f"reason.details has no {path[1]!r} for this trigger (it has: {known})")
        elif path[0] == "facts" and len(path) > 1 and path[1] not in fact_names:
            found.append(f"account.facts has no {path[1]!r}: map it under account_facts first")
    return list(dict.fromkeys(found))


def _attribute_chains(tree: nodes.Template) -> list[list[str]]:
    """Each `a.b.c` / `a['b']` reached from a variable, outermost first, as [a, b, c]."""
    chains = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        chain: list[str] = []
        current: nodes.Node = node
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            if isinstance(current, nodes.Getattr):
                chain.append(current.attr)
            elif isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str):
                chain.append(current.arg.value)
            else:
                chain.append("")
            current = current.node
        if isinstance(current, nodes.Name):
            chains.append([current.name, *reversed(chain)])
    return chains


def render_text(template: Template, context: Mapping[str, Any]) -> str:
    """Rendered, with trailing spaces and runs of blank lines removed."""
    lines = [line.rstrip() for line in template.render(context).strip().splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text)


def render_line(template: Template, context: Mapping[str, Any]) -> str:
    """A subject: one line, single spaces."""
    return " ".join(template.render(context).split())


def sentence_breaks(text: str) -> Sequence[str]:
    """Lines that end mid-sentence (for tests and validation of shipped text): a line that is
    not a list item, a heading (ends with ':') or a sparkline, and does not end a sentence."""
    bad = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("- ", "* ")):
            continue
        if stripped[-1] in ".:!?)" or stripped.startswith("http"):
            continue
        if all(ch in "▁▂▃▄▅▆▇█ " for ch in stripped.split(":")[-1].strip() or "x"):
            continue
        bad.append(stripped)
    return bad
