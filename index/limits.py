"""The limits on what one request may send or ask for, with their defaults; adjustable per process.

Two kinds of limit live here:
- on input (`InvalidArgument` past them, `lamina.index.types`): bytes of an id, of a text, of a
  document's metadata as JSON, and the metadata's nesting depth;
- on the work one search may ask for (`ResourceExhausted` past them, `check_search_work`): the beam
  width times the candidates of a first stage (`ef_search` × limit for HNSW, `nprobe` × limit for
  IVF, `max_postings` × limit for SPANN), and the candidates a request handles in all (every
  stage's limit, the rerank's kappa and the graph's limit, summed).

`current()` is what checks read; `configure(...)` replaces it for the whole process (`lamina serve`
does, from its options and the config file, before it takes calls). Defaults:

    max_id_bytes        512
    max_text_bytes      1 MiB (1,048,576)
    max_metadata_bytes  64 KiB (65,536)
    max_metadata_depth  32
    max_ef_k            10,000,000   (e.g. ef_search 1,000 at k 10,000, or 10,000 at k 1,000)
    max_candidates      40,000
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lamina.index.errors import InvalidArgument


@dataclass(frozen=True)
class Limits:
    max_id_bytes: int = 512
    max_text_bytes: int = 1 << 20
    max_metadata_bytes: int = 64 << 10
    max_metadata_depth: int = 32
    max_ef_k: int = 10_000_000
    max_candidates: int = 40_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidArgument(f"limit {f.name} must be a positive integer, got {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Limits:
        """Limits from a mapping (a config file's `limits:` section); unknown names are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidArgument(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


DEFAULTS = Limits()
_current = DEFAULTS


def current() -> Limits:
    """The limits in force in this process."""
    return _current


def configure(limits: Limits | None = None, **changes: int) -> Limits:
    """Put `limits` (default: the current ones) with `changes` in force for this process; returns them."""
    global _current
    _current = dataclasses.replace(limits if limits is not None else _current, **changes)
    return _current
