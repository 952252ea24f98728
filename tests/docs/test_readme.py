"""The README stays true: quick start, settings, lifecycle diagrams."""

from __future__ import annotations

import re

from server import categories
from server.core.diagram import render_into
from server.process.settings import env_names
from tests.support import repo_root

README = (repo_root() / "README.md").read_text()


def test_quick_start_has_exactly_two_commands() -> None:
    """The Quick start section holds exactly two sh blocks: the demo and the tests."""
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert [b.strip() for b in blocks] == ["./scripts/demo", "./scripts/test"]


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the same test command as the README."""
    ci = (repo_root() / ".ci" / "run").read_text()
    assert "scripts/test" in ci


def test_every_setting_is_documented() -> None:
    """Each settings field and its environment variable appear in the Configuration table."""
    for field, env in env_names().items():
        assert f"| `{field}` | `{env}` |" in README, field


def test_lifecycle_diagrams_match_the_tables() -> None:
    """The README's diagrams are the ones drawn from the transition tables and the
    built-in categories (scripts/gen-docs)."""
    assert render_into(README, categories.builtins()) == README
    assert "offered --> assigned: accept" in README
    for d in categories.builtins():
        assert f"<!-- diagram:category-{d.key} -->" in README, d.key
    assert "quote_confirmed --> started: approve" in README
