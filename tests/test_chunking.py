"""The chunker within bounds (issue 23, finding 4): chunking costs memory in proportion to its text
with small constants, and makes exactly the chunks the whole-text counting made (version 2 changed
one grouping rule in both: a short title or heading leads the next paragraph's chunk, issue 29).

Chunking a 1 MB CSV took 370 MB: to learn whether a text fits in one chunk, the chunker tokenized
all of it at once, at about 600 bytes a token. It now counts window by window and stops at the
first window that overflows. `tests/support/reference_chunker.py` is the chunker as it was, the
oracle of the equality tests.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from core.embedding import Embedder
from ingest.chunking import Chunker
from ingest.parsers import ParsedDocument, ParseError, parse_document
from tests.support.documents import make_csv, make_json, make_pdf, make_pptx
from tests.support.essays import TOPICS, essay
from tests.support.hostile import hostile_documents
from tests.support.memory import peak_growth
from tests.support.reference_chunker import ReferenceChunker
from tests.support.sized import FORMATS, sized_document

DATA = Path(__file__).resolve().parent / "data"
# (chunk size, overlap): the model's window as served, the rebuild tests' size, and a size small
# enough that ordinary paragraphs go through the sentence splitter and span several windows.
SIZES = [(None, 64), (48, 8), (12, 2)]


def _edge_texts() -> dict[str, str]:
    """Texts where counting by windows could go wrong: runs without a space longer than a
    window, words the tokenizer counts as one token however long, runs of spaces, scripts the
    tokenizer splits per character, and counts that land just around a chunk's size."""
    return {
        **{f"edge/long-words-{n}.txt": " ".join(["y" * 150] * n) for n in (60, 253, 254, 255)},
        "edge/no-space.txt": "x" * 70_000,
        "edge/no-space-then-words.txt": "x" * 9_000 + " tern" * 2_000,
        "edge/space-runs.txt": ("word " + " " * 5_000 + "\n \n") * 40,
        "edge/commas.txt": "tern, " * 5_000,
        "edge/cjk.txt": "汉字的文本" * 2_000 + "。\n\n" + "日本語の文書です。" * 500,
        "edge/accents.txt": "e\u0301te\u0301 Σίσυφος ΣΑΣ " * 3_000,
        "edge/emoji.txt": "🙂 " * 4_000 + "\u200b" * 100 + " done",
        "edge/lines.txt": "\n".join(f"line {n} of a list, without sentences" for n in range(5_000)),
    }


@pytest.fixture(scope="module")
def corpus() -> dict[str, ParsedDocument]:
    """Ordinary documents of every kind the tests know, the hostile generator's readable ones
    (but its deeply nested HTML: a minute to parse, a word of text), and the edge texts; parsed."""
    docs = {f"essays/{t}.txt": essay(t, words=3_000).encode() for t in TOPICS}
    docs |= {f"data/{p.name}.txt": p.read_bytes() for p in DATA.iterdir()}
    docs["data/compose_spec.json"] = (DATA / "compose_spec.json").read_bytes()
    docs |= {f"sized/doc.{f}": sized_document(f, 60_000) for f in FORMATS}
    docs["formats/rows.csv"] = make_csv(
        [["name", "notes"]] + [[f"row {n}", essay("deserts", words=n % 90)] for n in range(300)]
    )
    docs["formats/record.json"] = make_json({"title": "Record", "items": [essay("tundra")] * 3})
    header = "Quarterly report - page header"  # repeated on every page: one chunk, first page
    docs["formats/report.pdf"] = make_pdf([f"{header}\n\n{essay(t)}" for t in TOPICS])
    docs["formats/slides.pptx"] = make_pptx([essay(t, words=200) for t in TOPICS])
    docs |= {
        f"hostile/{key}": data
        for key, (data, expect) in hostile_documents().items()
        if expect.outcome != "failed" and not key.startswith("html/deep")
    }
    docs |= {key: text.encode() for key, text in _edge_texts().items()}
    parsed = {}
    for key, data in docs.items():
        with contextlib.suppress(ParseError):  # hostile files a lenient parser may not read
            parsed[key] = parse_document(key, data)
    assert len(parsed) > 60
    return parsed


@functools.cache  # a chunker copies the tokenizer: 50 ms
def _chunkers(embedder: Embedder, size: int | None, overlap: int):
    tokenizer = embedder.tokenizer.backend_tokenizer
    reference = ReferenceChunker(tokenizer, size or embedder.max_tokens, overlap)
    return Chunker.for_embedder(embedder, size, overlap), reference


@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_every_document_chunks_exactly_as_before(
    embedder: Embedder, corpus: dict[str, ParsedDocument], size: int | None, overlap: int
) -> None:
    """The small sizes skip the texts over 200 KB: the same paths, at a tenth of the time."""
    chunker, reference = _chunkers(embedder, size, overlap)
    for key, parsed in corpus.items():
        if size is not None and len(parsed.text) > 200_000:
            continue
        assert chunker.chunk_document(parsed).chunks == reference.chunks_of(parsed), key


@pytest.mark.parametrize("body", ["longer than a chunk", "a chunk but for the title"])
def test_a_title_leads_the_chunk_of_the_text_after_it(embedder: Embedder, body: str) -> None:
    """A title was a chunk by itself whenever the paragraph after it did not fit beside it: 3,681
    of SciFact's 5,183 abstracts, each title matched by BM25 apart from its abstract, which cost
    BM25 0.011 NDCG@10 (issue 29)."""
    chunker = Chunker.for_embedder(embedder, None, 64)
    title = "Vitamin D deficiency and the risk of tuberculosis"
    words = essay("vitamin D", 1200).split()
    paragraph = words[0]
    for word in words[1:]:  # the longest run of words that fits in a chunk
        if chunker._count(f"{paragraph} {word}") > embedder.max_tokens:
            break
        paragraph += f" {word}"
    if body == "longer than a chunk":
        paragraph += " " + " ".join(words[-40:])
    chunks = chunker.split(f"{title}\n\n{paragraph}")
    assert len(chunks) == 2
    assert chunks[0].text.startswith(title) and len(chunks[0].text) > len(title) + 100
    assert all(chunker._count(c.text) <= embedder.max_tokens for c in chunks)


@pytest.fixture(scope="module")
def chunkers_by_family(
    embedder: Embedder,
) -> Callable[[str, int], tuple[Chunker, ReferenceChunker]]:
    """Chunker and reference on the shipped model's tokenizer (BERT's WordPiece) or, trained here
    on the essays, the other families sentence-transformers models use: byte-level BPE (RoBERTa's)
    and a metaspace unigram that squeezes runs of spaces (XLM-R's). The windows must count exactly
    under each."""
    texts = [essay(t) for t in TOPICS] + ["汉字 e\u0301te\u0301 Σίσυφος 🙂 tern, petrel; x.y"] * 5
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    bpe_trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=alphabet, show_progress=False
    )
    bpe.train_from_iterator(texts, bpe_trainer)
    unigram = Tokenizer(models.Unigram())
    squeeze = normalizers.Replace(Regex(" {2,}"), " ")
    unigram.normalizer = normalizers.Sequence([normalizers.NFKC(), squeeze])
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram_trainer = trainers.UnigramTrainer(
        vocab_size=300, unk_token="<unk>", special_tokens=["<unk>"], show_progress=False
    )
    unigram.train_from_iterator(texts, unigram_trainer)
    families = {"wordpiece": embedder.tokenizer.backend_tokenizer, "bpe": bpe, "unigram": unigram}

    @functools.cache  # a chunker copies its tokenizer: 50 ms for the model's
    def pair(family: str, size: int) -> tuple[Chunker, ReferenceChunker]:
        tokenizer = families[family]
        return Chunker(tokenizer, size, size // 4), ReferenceChunker(tokenizer, size, size // 4)

    return pair


_ATOMS = st.sampled_from(
    [" ", "  ", "\n", "\n\n", " \n ", "\t", "\u00a0", ".", ",", ";", "?", "tern", "Petrel", "x",
     "汉", "e\u0301", "Σ", "🙂", "\u200b", "(", "3.5", "y" * 101, "z" * 30, "   \n\n  "]
)  # fmt: skip
_TEXTS = st.lists(_ATOMS | st.text(alphabet="ab .,\n", max_size=40), max_size=300).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=_TEXTS,
    size=st.integers(min_value=4, max_value=40),
    family=st.sampled_from(["wordpiece", "bpe", "unigram"]),
)
def test_any_text_chunks_exactly_as_before(
    chunkers_by_family: Callable[[str, int], tuple[Chunker, ReferenceChunker]],
    text: str,
    size: int,
    family: str,
) -> None:
    """Small sizes make windows of 64 to 640 characters, so the generated texts span many."""
    chunker, reference = chunkers_by_family(family, size)
    assert chunker.split(text) == reference.split(text)


@pytest.mark.parametrize("fmt", ["csv", "txt", "json"])
def test_chunking_a_megabyte_takes_a_few_megabytes(embedder: Embedder, fmt: str) -> None:
    """The probe's measure: a 1 MB CSV grew the process by 330 MB (470 MB here; 180 MB for prose,
    330 MB for a JSON array, one long paragraph). Now 5, 0.5 and 15 MB: at most 32 bytes a byte
    of input."""
    data = sized_document(fmt, 1_000_000)
    parsed = parse_document(f"big.{fmt}", data)
    chunker = Chunker.for_embedder(embedder, None, 64)
    chunker.split("Warm. " * 300)  # the sentence splitter loads NLTK on first use: not the text's
    chunks, growth = peak_growth(lambda: chunker.split(parsed.text))
    assert len(chunks) > 100
    assert growth < 32 * len(data), (
        f"chunking {len(data) / 1e6:.1f} MB of {fmt} took {growth / 2**20:.0f} MB"
    )
