"""What `rag --help` and every group's `--help` tell a newcomer: each command with a whole
summary (click cuts a long first sentence short with "..."), run in-process through CliRunner."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from cli.main import app


def _groups(group: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list[str]]]:
    """Every group of the command tree (the root first) with the names of its commands."""
    commands = getattr(group, "commands", {})
    found = [(path, sorted(commands))]
    for name, command in sorted(commands.items()):
        if getattr(command, "commands", None):
            found += _groups(command, (*path, name))
    return found


def _summaries(help_text: str) -> dict[str, str]:
    """The "Commands:" list of a --help: command name -> its summary."""
    listed = help_text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip().split(maxsplit=1) for line in listed.splitlines()]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def test_every_command_and_group_has_a_whole_summary() -> None:
    runner = CliRunner()
    groups = _groups(typer.main.get_command(app))
    assert len(groups) > 5  # the root, keys, eval, eval baseline, golden, deletes, models
    for path, names in groups:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        summaries = _summaries(result.output)
        assert sorted(summaries) == names, result.output
        for name, summary in summaries.items():
            where = " ".join(("rag", *path, name))
            assert summary, f"`{where}` has no summary in `rag {' '.join(path)} --help`"
            assert not summary.endswith(("...", "…")), f"`{where}`'s summary is cut: {summary}"


def test_golden_sets_are_drafted_by_rag_golden_generate_alone() -> None:
    """`rag eval make-golden` duplicated `rag golden generate`; only the latter is left."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert "generate" in commands["golden"].commands
    assert "make-golden" not in commands["eval"].commands
