"""The two-hop corpus: doc 1 says who leads the Zephyr Initiative, doc 2 says where the Zephyr
Initiative operates from. The question names the person and asks where; only the graph links the
person to doc 2, since doc 2 shares no words with the question and distractors outrank it densely.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.documents import make_docx, make_html, make_markdown, make_pdf, make_text

QUESTION = "Where is the program that Marta Kowalski leads based?"
DOC1 = "tenants/acme/people/kowalski.docx"
DOC2 = "tenants/acme/projects/zephyr.md"

ZEPHYR_PARAGRAPHS = [
    "The Zephyr Initiative operates from Quillon Harbour on the northern coast.",
    "Its annual budget of four million euros is approved each spring by the Ostrava Council.",
    "Engineers of the Zephyr Initiative test tidal turbines with Nordvik Energy every winter.",
]


def write(root: Path, key: str, data: bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def two_hop_corpus(root: Path) -> None:
    write(
        root,
        DOC1,
        make_docx(
            [
                "Marta Kowalski leads the Zephyr Initiative.",
                "Before that, Marta Kowalski ran procurement for a shipping firm in Gdansk.",
            ]
        ),
    )
    write(root, DOC2, make_markdown("Zephyr Initiative", ZEPHYR_PARAGRAPHS))
    # Close to the question in meaning but not in words: dense ranks them above doc 2.
    distractors = {
        "literacy.pdf": make_pdf(
            ["The literacy scheme is headquartered in Lisbon and run by a team of volunteers."]
        ),
        "mentoring.html": make_html(
            "Mentoring", ["Our mentoring effort sits at the central library; a teacher heads it."]
        ),
        "garden.txt": make_text(
            ["The community garden project is located in the north district, run by residents."]
        ),
        "office.txt": make_text(
            ["Which city hosts the head office? The headquarters are in Vienna."]
        ),
    }
    for name, data in distractors.items():
        write(root, f"tenants/acme/misc/{name}", data)
