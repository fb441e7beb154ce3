"""docs/configuration.md is the settings object, rendered: regenerate and compare, so it never
goes stale (after adding a setting: `python -m core.settings_doc`)."""

from __future__ import annotations

from pathlib import Path

from core.settings import FLAT_NAMES, SECTIONS, IngestSettings, Settings
from core.settings_doc import DOC_PATH, _parse, main, render

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_reference_is_up_to_date() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `python -m core.settings_doc`"
    )
    assert main(["--check"]) == 0


def test_every_setting_is_listed_with_a_description() -> None:
    text = render()
    listed = {(f.owner, f.name) for s in _parse() for g in s.groups for f in g.fields}
    root = {(Settings, n) for n in Settings.model_fields if n not in SECTIONS}
    assert listed == root | {(cls, n) for cls in SECTIONS.values() for n in cls.model_fields}
    for flat, (section, name) in FLAT_NAMES.items():
        assert f"| `RAG_{flat.upper()}`" in text and f"| `{section}.{name}` |" in text, flat
    for section in _parse():
        for group in section.groups:
            for f in group.fields:
                assert f.description, f"{f.name}: no Field(description=...) in core/settings.py"
                assert "\n" not in f.description, f"{f.name}: its description is not one line"


def test_the_readme_states_the_chunking_defaults() -> None:
    readme = README.read_text(encoding="utf-8")
    overlap = IngestSettings.model_fields["chunk_overlap"].default
    assert (
        IngestSettings.model_fields["chunk_size"].default is None
    )  # the model's window: 254 tokens
    assert "254 for\n  MiniLM-L6" in readme and f"overlap {overlap}" in readme
    assert "512" not in readme and "docs/configuration.md" in readme
