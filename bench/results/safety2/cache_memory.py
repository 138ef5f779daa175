"""Resident bytes of the verified cache after the bench ann SPANN grid (same data, same build)."""
import json, sys, tempfile
from pathlib import Path
import numpy as np
from lamina.bench.datasets import load_dataset
from lamina.bench.harness import SPANN_QUERY_ARGS
from lamina.index.spann import SpannConfig, SpannIndex

ds = load_dataset("synthetic:200000:128")
queries = ds.queries[:300]
with tempfile.TemporaryDirectory(dir="/work/wt/safety/bench/out/safety") as d:
    cfg = SpannConfig(head_ratio=0.06, posting_pages=12, verified_cache_mb=512, use_gpu=False)
    SpannIndex.build(np.arange(len(ds.base), dtype=np.int64), ds.base, metric=ds.metric, config=cfg, path=Path(d)).close()
    index = SpannIndex.load(Path(d))
    out = []
    for args in SPANN_QUERY_ARGS:
        for _ in range(2):
            for q in queries:
                index.search(q[None], 10, params=args)
        cache = index._reader.cache
        out.append({"params": args, "resident_mib": cache.resident_bytes / 2**20, "hits": cache.hits,
                    "first_misses": cache.first, "full": cache.full})
    size = index._reader.size
    assert index.cache_bytes() == index._reader.cache.resident_bytes
    print(json.dumps({"posting_file_mib": size / 2**20, "memory_bytes_index": index.memory_bytes(), "after": out}, indent=1))
