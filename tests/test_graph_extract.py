"""Entity extraction: offline rules on real prose, the LLM extractor on a stubbed endpoint."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from core.llm import ChatClient, LlmEndpoint
from core.settings import Settings
from graph.extract import CO_OCCURS, Extraction, RuleExtractor, normalise_key
from graph.factory import make_extractor
from graph.llm import LlmExtractor


def entities(text: str) -> dict[str, str]:
    return {e.key: e.type for e in RuleExtractor().extract(text).entities}


def relations(x: Extraction) -> dict[tuple[str, str], float]:
    return {(r.source_key, r.target_key): r.weight for r in x.relations}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme  Corp.", "acme corp"),
        ("ACME-Corp", "Acme Corp"),
        ("TNF-α", "TNF alpha"),
        ("NF-κB", "nf-kappab"),
        ("parse_document", "parse-document"),
        ("ＢＲＣＡ１", "BRCA1"),  # full-width forms fold by NFKC
    ],
)
def test_keys_fold_case_whitespace_punctuation_and_greek(a: str, b: str) -> None:
    assert normalise_key(a) == normalise_key(b) != ""


def test_identifiers_symbols_acronyms_and_names_are_found() -> None:
    found = entities(
        "The advisory for CVE-2024-12345 was sent to Acme Corporation on Friday. "
        "We measured TNF-alpha, IL-6 and p53 in BRCA1 carriers by MRI and RNAs in HeLa cells. "
        "The fix lives in parse_document and in getUserName."
    )
    assert found == {
        "cve-2024-12345": "identifier",
        "acme-corporation": "name",
        "friday": "name",
        "tnf-alpha": "gene",
        "il-6": "gene",
        "p53": "gene",
        "brca1": "gene",
        "mri": "acronym",
        "rna": "acronym",  # the plural folds into the acronym
        "hela": "acronym",
        "parse-document": "identifier",
        "getusername": "identifier",
    }


def test_sentence_initial_words_are_not_names_without_other_evidence() -> None:
    found = entities(
        "Alterations of cerebral white matter were measured. However, nothing changed. "
        "Results: Patients improved. Zurich hosted the trial. BACKGROUND: Few studies exist."
    )
    assert found == {}  # Zurich is capitalised only where every word is


def test_a_sentence_initial_name_counts_when_the_chunk_capitalises_it_elsewhere() -> None:
    found = entities("Zurich hosted the trial. The team stayed in Zurich for a year.")
    assert found == {"zurich": "name"}


def test_phrases_join_across_of_but_trim_stopwords_and_stat_acronyms() -> None:
    found = entities(
        "The University of Zurich and Anna Smith of Lyon reported an OR of 1.2 (95% CI 1.1 to 1.4) "
        "in study II."
    )
    assert found == {"university-of-zurich": "name", "anna-smith": "name", "lyon": "name"}


def test_co_occurrence_edges_are_weighted_by_shared_sentences() -> None:
    x = RuleExtractor().extract(
        "Marta Kowalski leads the Zephyr Initiative. Marta Kowalski praised the Zephyr Initiative "
        "in Gdansk. Gdansk is far away from Lyon."
    )
    assert relations(x) == {
        ("marta-kowalski", "zephyr-initiative"): 2.0,
        ("gdansk", "marta-kowalski"): 1.0,
        ("gdansk", "zephyr-initiative"): 1.0,
        ("gdansk", "lyon"): 1.0,
    }
    assert {r.type for r in x.relations} == {CO_OCCURS}


# --------------------------------------------------------------------------- the LLM extractor
# The endpoint is a stub (httpx.MockTransport) standing in for a remote OpenAI-compatible LLM,
# which cannot run here; the extractor's own parsing and validation are what these tests exercise.


def llm_returning(content: str | None, status: int = 200) -> tuple[LlmExtractor, list[dict]]:
    requests: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        assert request.url.path == "/v1/chat/completions"
        body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return httpx.Response(status, json=body)

    endpoint = LlmEndpoint("http://llm.test/v1", "stub-model", None, 5.0, 512, 1 << 20)
    return LlmExtractor(ChatClient(endpoint, httpx.MockTransport(handler))), requests


def test_llm_extraction_is_validated_and_normalised() -> None:
    answer = {
        "entities": [
            {"name": "Marta Kowalski", "type": "Person"},
            {"name": "Zephyr Initiative", "type": "Organisation"},
        ],
        "relations": [
            {"source": "Marta Kowalski", "target": "Zephyr Initiative", "type": "Leads"},
            {"source": "marta kowalski", "target": "Quillon Harbour", "type": "visited"},
        ],
    }
    extractor, requests = llm_returning("```json\n" + json.dumps(answer) + "\n```")
    x = extractor.extract("Marta Kowalski leads the Zephyr Initiative.")
    assert requests[0]["model"] == "stub-model"
    assert requests[0]["messages"][1]["content"] == "Marta Kowalski leads the Zephyr Initiative."
    assert {(e.key, e.type) for e in x.entities} == {
        ("marta-kowalski", "person"),
        ("zephyr-initiative", "organisation"),
        ("quillon-harbour", "entity"),  # named only by a relation
    }
    assert {(r.source_key, r.target_key, r.type) for r in x.relations} == {
        ("marta-kowalski", "zephyr-initiative", "leads"),
        ("marta-kowalski", "quillon-harbour", "visited"),
    }


@pytest.mark.parametrize(
    ("content", "status"),
    [
        ("this is not JSON", 200),
        ('{"entities": [{"type": "person"}]}', 200),  # a name is required
        ('{"entities": "Marta"}', 200),
        ("[]", 200),
        (None, 200),
        ('{"entities": []}', 503),
    ],
)
def test_invalid_llm_output_is_logged_and_skipped(
    content: str | None, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    extractor, _ = llm_returning(content, status)
    with caplog.at_level(logging.WARNING, logger="graph.llm"):
        assert extractor.extract("Marta Kowalski leads the Zephyr Initiative.") == Extraction(
            [], []
        )
    assert extractor.failures == 1
    assert "graph extraction skipped a chunk" in caplog.text


def test_settings_choose_the_extractor(tmp_path: Path) -> None:
    assert isinstance(make_extractor(Settings(data_dir=tmp_path)), RuleExtractor)
    with pytest.raises(ValueError, match="RAG_GRAPH_LLM_BASE_URL"):
        make_extractor(Settings(data_dir=tmp_path, graph_extractor="llm", llm_base_url=None))
    llm = Settings(
        data_dir=tmp_path,
        graph_extractor="llm",
        llm_base_url="http://answers.test/v1",
        graph_llm_base_url="http://extract.test/v1",
    )
    assert isinstance(make_extractor(llm), LlmExtractor)
