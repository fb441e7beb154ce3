"""What `rag --help` and every command's `--help` tell a newcomer, run in-process through
CliRunner at a terminal's usual 80 columns: each command with a whole summary (click cuts a long
first sentence short with "..."), and each option that falls back to a setting with its value."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from cli.main import app
from core.settings import RetrievalSettings

COMMANDS: Any = typer.main.get_command(app)


def _tree(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group, the root first, with its words after `rag`."""
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _tree(sub, (*path, name))
    return found


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def _summaries(help_text: str) -> dict[str, str]:
    """The "Commands:" list of a group's --help: command name -> its summary."""
    listed = help_text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip().split(maxsplit=1) for line in listed.splitlines()]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def test_every_command_and_group_has_a_whole_summary() -> None:
    groups = [(path, group) for path, group in _tree(COMMANDS) if getattr(group, "commands", {})]
    assert len(groups) > 5  # the root, keys, eval, eval baseline, golden, deletes, models
    for path, group in groups:
        help_text = _help(path)
        summaries = _summaries(help_text)
        assert sorted(summaries) == sorted(group.commands), help_text
        for name, summary in summaries.items():
            where = " ".join(("rag", *path, name))
            assert summary, f"`{where}` has no summary in `rag {' '.join(path)} --help`"
            assert not summary.endswith(("...", "…")), f"`{where}`'s summary is cut: {summary}"


def test_golden_sets_are_drafted_by_rag_golden_generate_alone() -> None:
    """`rag eval make-golden` duplicated `rag golden generate`; only the latter is left."""
    assert "generate" in COMMANDS.commands["golden"].commands
    assert "make-golden" not in COMMANDS.commands["eval"].commands


def test_options_that_fall_back_to_a_setting_show_its_default_value() -> None:
    """Help saying "default RAG_SEARCH_TOP_K" left the newcomer to look the value up."""
    for path, _ in _tree(COMMANDS):
        help_text = _help(path)
        assert "default rag_" not in help_text.lower(), help_text
    top_k = RetrievalSettings.model_fields["search_top_k"].default
    search = " ".join(_help(("search",)).split())
    assert f"Hits to return (default {top_k}, RAG_SEARCH_TOP_K)" in search, search
