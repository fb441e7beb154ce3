"""Entities and relations out of one chunk of text, and the keys that identify entities.

`EntityExtractor` is the seam. `RuleExtractor` is the offline default: it needs no model and no
download, and aims at precision over recall, because every entity it invents becomes a graph node
that can pull unrelated chunks into a search. It finds names (capitalised phrases), acronyms,
gene/protein-like symbols (BRCA1, IL-6, TNF-alpha), identifiers (CVE-2024-12345, snake_case), and
links entities that share a sentence, weighted by how many sentences they share.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Protocol

# Query matching looks for keys of up to this many tokens; longer phrases are not entities.
MAX_KEY_TOKENS = 6
CO_OCCURS = "co_occurs"

_GREEK = str.maketrans(
    {
        "α": "alpha",
        "β": "beta",
        "γ": "gamma",
        "δ": "delta",
        "ε": "epsilon",
        "θ": "theta",
        "κ": "kappa",
        "λ": "lambda",
        "σ": "sigma",
        "ω": "omega",
    }
)
_KEY_SPLIT = re.compile(r"[\W_]+")


def surface_tokens(text: str) -> list[str]:
    """Tokens as written (case kept), split at whitespace and punctuation."""
    return [t for t in _KEY_SPLIT.split(unicodedata.normalize("NFKC", text)) if t]


def fold(token: str) -> str:
    """A token as keys spell it: casefolded, Greek letters named (`TNFα` is tnfalpha)."""
    return token.casefold().translate(_GREEK)


def normalise_key(name: str) -> str:
    """The identity of an entity: `Acme  Corp.`, `acme corp` and `ACME-Corp` share `acme-corp`."""
    return "-".join(fold(t) for t in surface_tokens(name))


@dataclass(frozen=True)
class Entity:
    name: str  # the surface form as written
    key: str  # normalise_key(name)
    type: str


@dataclass(frozen=True)
class Relation:
    source_key: str
    target_key: str
    type: str
    weight: float


@dataclass(frozen=True)
class Extraction:
    """What one chunk says: entities unique by key, relations unique by (source, target, type)."""

    entities: list[Entity]
    relations: list[Relation]


class EntityExtractor(Protocol):
    def extract(self, chunk_text: str) -> Extraction: ...


def make_extraction(entities: Iterable[Entity], relations: Iterable[Relation]) -> Extraction:
    """Merge duplicates (first surface form wins, relation weights add) and drop dangling edges.

    Every relation's endpoints are entities of the same chunk: the graph relies on it to prune
    an edge no later than its endpoints.
    """
    by_key: dict[str, Entity] = {}
    for e in entities:
        if e.key:
            by_key.setdefault(e.key, e)
    weights: Counter[tuple[str, str, str]] = Counter()
    for r in relations:
        if r.source_key in by_key and r.target_key in by_key and r.source_key != r.target_key:
            weights[r.source_key, r.target_key, r.type] += r.weight
    return Extraction(
        list(by_key.values()), [Relation(s, t, kind, w) for (s, t, kind), w in weights.items()]
    )


# --------------------------------------------------------------------------- the offline rules

# Sentence boundaries; a colon starts a clause whose first word is capitalised by convention.
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*|:\s+")
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_SNAKE_CASE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b")
_CODE = re.compile(r"[A-Z]{2,}(?:-\d{3,})+")  # CVE-2024-12345, ISO-9001
_GREEK_SUFFIX = re.compile(r"^[A-Z][A-Za-z0-9]*-(?:alpha|beta|gamma|delta|kappa)[A-Za-z0-9]*$")
_CONNECTORS = frozenset({"of", "de", "van", "von", "der", "del", "da", "di", "la", "le"})
# Common words that a sentence start (or a heading, or a structured-abstract label) capitalises,
# and acronyms so generic (statistics, Roman numerals) that they would only make hubs.
_STOPWORDS = """
    a about after all also although among an and another any are as at based because been before
    being between both but by can compared could did do does during each either et al even every
    first for from further furthermore given had has have having he hence her here his how however
    i if in including into is it its many may might more moreover most much my neither no nor not
    now of on once one only or other our over per previously recent recently second several she
    should since so some such than that the their them then there therefore these they third this
    those though thus to two under unlike upon using was we were what when where whereas whether
    which while who whom whose why will with within without would yet you your
    again earlier finally instead last later meanwhile next overall still today together
    tomorrow yesterday used main
    abstract aim aims background conclusion conclusions context design discussion exposure
    exposures figure fig findings funding importance interpretation introduction measurements
    methods objective objectives outcome outcomes participants patients purpose results setting
    study studies summary table interventions limitations significance
    ci or hr rr sd se sem iqr vs ii iii iv vi vii viii ix xi xii
"""
STOPWORDS = frozenset(_STOPWORDS.split())


@dataclass
class _Word:
    text: str
    start: int
    end: int
    initial: bool  # capitalised whatever it means: first of a sentence, clause or label
    shouted: bool  # in a line written in capitals, where capitals do not make acronyms


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s and s.strip()]


def _words(sentence: str) -> list[_Word]:
    """Words, with what their capitals can tell.

    A word after a label in capitals (`RESULTS High levels...`) starts a clause, and in a line
    mostly in capitals (`EFFECT OF ASPIRIN ON...`) capitals do not make acronyms.
    """
    matches = list(_WORD.finditer(sentence))
    long = [m.group() for m in matches if len(m.group()) > 3]
    shouted = len(long) >= 3 and 3 * sum(w.isupper() for w in long) >= 2 * len(long)
    words: list[_Word] = []
    for i, m in enumerate(matches):
        after_label = i > 0 and matches[i - 1].group().isupper() and not m.group().isupper()
        words.append(_Word(m.group(), m.start(), m.end(), i == 0 or after_label, shouted))
    return words


def _symbol_type(word: str, shouted: bool = False) -> str | None:
    """Acronym, gene-like symbol or identifier for one word on its own; None for anything else."""
    if not word[0].isalpha() or len(word) < 2:
        return None  # numbers and measurements (28wk, 3D) are not entities
    if word.isascii() and word.islower() and word.replace("-", "").isalpha():
        return None  # plain lowercase words, most of any text: the fast way out
    if _CODE.fullmatch(word):
        return "identifier"
    letters = [c for c in word if c.isalpha()]
    upper = sum(c.isupper() for c in letters)
    if any(c.isdigit() for c in word):
        # BRCA1, IL-6, p53, HER2, COVID-19; lowercase ones (sha256, x86) are identifiers.
        return "gene" if upper or re.match(r"^[a-z]\d", word) else "identifier"
    if _GREEK_SUFFIX.match(word) or any("\u03b1" <= c.casefold() <= "\u03c9" for c in word):
        return "gene"
    if upper >= 2 and 2 * upper >= len(letters):
        if shouted or len(letters) > 6 or _singular(word, "acronym").casefold() in STOPWORDS:
            return None  # a shouted line, a word in capitals (SUBJECTS), or a label (AIMS)
        return "acronym"
    if word[0].islower() and upper:
        return "identifier"  # camelCase
    return None


def _is_capitalised(word: str) -> bool:
    """Starts with a capital, and is not a label in capitals (RESULTS, PARTICIPANTS)."""
    return word[0].isupper() and not (word.isupper() and word.isalpha() and len(word) > 6)


class RuleExtractor:
    """Offline extraction from surface cues: capitalisation, symbols and identifier shapes."""

    def extract(self, chunk_text: str) -> Extraction:
        texts = _sentences(chunk_text)
        sentences = [_words(s) for s in texts]
        # A word capitalised where grammar does not demand it is a name; at a sentence start
        # it counts only if the chunk also capitalises it elsewhere.
        proper = {
            w.text.casefold()
            for words in sentences
            for w in words
            if not w.initial and _is_capitalised(w.text)
        }
        entities: list[Entity] = []
        relations: list[Relation] = []
        for sentence, words in zip(texts, sentences, strict=True):
            found = self._snake_case(sentence) + self._names(sentence, words, proper)
            entities += found
            keys = sorted({e.key for e in found})
            relations += [Relation(a, b, CO_OCCURS, 1.0) for a, b in combinations(keys, 2)]
        return make_extraction(entities, relations)

    @staticmethod
    def _snake_case(sentence: str) -> list[Entity]:
        return [
            Entity(m.group(), normalise_key(m.group()), "identifier")
            for m in _SNAKE_CASE.finditer(sentence)
        ]

    def _names(self, sentence: str, words: list[_Word], proper: set[str]) -> list[Entity]:
        found = [_symbol(w.text, kind) for w in words if (kind := _symbol_type(w.text, w.shouted))]
        if words and words[0].shouted:
            return found  # in a line of capitals, capitals say nothing about names
        for group in self._capitalised_runs(sentence, words):
            phrase = _trim(group)
            if not phrase or len(phrase) > MAX_KEY_TOKENS or phrase[-1].end - phrase[0].start < 2:
                continue  # nothing left, too long for a name, or one letter (T cells)
            head, rest = phrase[0], phrase[1:]
            if head.initial and head.text.casefold() not in proper:
                # `Patch CVE-2024-12345`, `Regulatory T` (cells): an initial word needs other
                # evidence to be (part of) a name.
                if all(len(w.text) == 1 or _symbol_type(w.text) for w in rest):
                    continue
            elif not rest and _symbol_type(head.text):
                continue  # a symbol on its own is already found
            name = sentence[phrase[0].start : phrase[-1].end]
            found.append(Entity(name, normalise_key(name), "name"))
        return found

    @staticmethod
    def _capitalised_runs(sentence: str, words: list[_Word]) -> list[list[_Word]]:
        """Adjacent capitalised words, joined across `of`/`de`/`van`...: University of Zurich."""
        runs: list[list[_Word]] = []
        current: list[_Word] = []
        for i, w in enumerate(words):
            adjacent = bool(current) and sentence[current[-1].end : w.start].strip() == ""
            nxt = words[i + 1] if i + 1 < len(words) else None
            if _is_capitalised(w.text):
                if not adjacent and current:
                    runs.append(current)
                    current = []
                current.append(w)
            elif (
                w.text in _CONNECTORS
                and adjacent
                and len(_trim(current)) == 1  # University of Zurich, not Anna Smith of Zurich
                and nxt is not None
                and _is_capitalised(nxt.text)
                and sentence[w.end : nxt.start].strip() == ""
            ):
                current.append(w)
            elif current:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
        return runs


def _trim(group: list[_Word]) -> list[_Word]:
    """Drop stopwords and connectors at either end: `The Acme Corporation` is `Acme Corporation`."""
    start, end = 0, len(group)
    while start < end and _droppable(group[start].text):
        start += 1
    # A last single letter designates (Protein A, Hepatitis B) even where it is a stopword.
    while end > start and _droppable(group[end - 1].text) and len(group[end - 1].text) > 1:
        end -= 1
    return group[start:end]


def _droppable(word: str) -> bool:
    return word.casefold() in STOPWORDS or word in _CONNECTORS


def _symbol(word: str, kind: str) -> Entity:
    return Entity(word, normalise_key(_singular(word, kind)), kind)


def _singular(word: str, kind: str) -> str:
    """RNAs and RNA are one acronym."""
    if kind == "acronym" and len(word) > 2 and word.endswith("s") and word[-2].isupper():
        return word[:-1]
    return word
