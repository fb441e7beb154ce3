"""Plain-text essays on a few topics: a bucket whose documents chunk into many similar pieces, for
the index-generation and rebuild tests."""

from __future__ import annotations

from pathlib import Path

from core.types import TenantScope

DEFAULT = TenantScope("default")
TOPICS = ["glaciers", "volcanoes", "coral reefs", "deserts", "rainforests", "tundra"]


def essay(topic: str, words: int = 600) -> str:
    sentences = [
        f"Sentence {i} of the essay on {topic} adds fact {i} about {topic}."
        for i in range(words // 11)
    ]
    return "\n\n".join(" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6))


def fill(bucket: Path, n: int = 3) -> None:
    for topic in TOPICS[:n]:
        (bucket / f"{topic.replace(' ', '_')}.txt").write_text(essay(topic))
    (bucket / "short.txt").write_text("A short note about penguins.")
