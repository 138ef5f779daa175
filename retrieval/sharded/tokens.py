"""The rerank's token source over the shards: the candidates' token matrices fetched from the shards
that hold them, packed as one `TokenStore.get_packed` answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from lamina.retrieval.sharded.routing import group


class ShardTokens:
    """The rerank's TokenSource over the shards: int ids of the merged vocabulary -> packed tokens."""

    def __init__(self, coll: Any, vocab: np.ndarray, owner: Mapping[str, int], dim: int) -> None:
        self.coll, self.vocab, self.owner, self.dim = coll, vocab, owner, dim

    def get_packed(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        doc_ids = [str(self.vocab[i]) for i in np.asarray(ids, dtype=np.int64)]
        positions = group(np.array([self.owner[d] for d in doc_ids], dtype=np.int64), self.coll.shards)
        answers = self.coll._gather([(s, self.coll.handles[s].tokens.remote([doc_ids[i] for i in pos]))
                                     for s, pos in enumerate(positions) if len(pos)])
        lengths = np.zeros(len(doc_ids), dtype=np.int64)
        pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for s, (tokens, offsets) in answers.items():
            lengths[positions[s]] = np.diff(offsets)
            pieces.append((positions[s], tokens, offsets))
        out_offsets = np.zeros(len(doc_ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_offsets[1:])
        out = np.empty((int(out_offsets[-1]), self.dim), dtype=np.float32)
        for pos, tokens, offsets in pieces:
            starts = out_offsets[pos]
            for j, start in enumerate(starts):  # one slice copy per candidate document (<= kappa)
                out[start:start + offsets[j + 1] - offsets[j]] = tokens[offsets[j]:offsets[j + 1]]
        return out, out_offsets
