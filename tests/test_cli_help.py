"""What `rag --help` and every group's `--help` tell a newcomer, run in-process through
CliRunner."""

from __future__ import annotations

import typer

from cli.main import app


def test_golden_sets_are_drafted_by_rag_golden_generate_alone() -> None:
    """`rag eval make-golden` duplicated `rag golden generate`; only the latter is left."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert "generate" in commands["golden"].commands
    assert "make-golden" not in commands["eval"].commands
