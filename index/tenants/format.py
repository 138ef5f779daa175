"""The tenant index's files: `tenants.json` (version, shape manifest, config, tenant names) and
one `tenants_<name>.npy` array per entry of `ARRAYS`, in the directory it is given.

Pure I/O and validation; `TenantIndex.save` gathers the arrays and `TenantIndex.load` installs
them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from lamina.index.errors import CorruptIndex

FORMAT_VERSION = 1
ARRAYS = ("vectors", "iids", "primary", "leaf", "centroids", "radius", "parent", "level", "child0",
          "nchild", "bloom", "tenant_sizes", "sl_node", "sl_tenant", "sl_offsets", "sl_slots",
          "shared_slot", "shared_tenant")


def write(directory: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write every array of `ARRAYS`, then `tenants.json` (meta with the format version)."""
    directory = Path(directory)
    for name in ARRAYS:
        np.save(directory / f"tenants_{name}.npy", arrays[name])
    (directory / "tenants.json").write_text(json.dumps({"version": FORMAT_VERSION, **meta}))


def read(directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) as `write` left them; CorruptIndex when a file is missing or unreadable."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "tenants.json").read_text())
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {meta.get('version')!r}, expected {FORMAT_VERSION}")
        return meta, {name: np.load(directory / f"tenants_{name}.npy") for name in ARRAYS}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptIndex(f"tenant index in {directory} is unreadable: {exc}") from None


def check(directory: Path, meta: Mapping[str, Any], a: Mapping[str, np.ndarray], dim: int, bloom_bytes: int) -> None:
    """CorruptIndex unless the arrays' shapes agree with the manifest and with each other."""
    try:
        n, n_nodes, n_tenants = meta["n"], meta["nodes"], len(meta["tenants"])
        checks = [
            a["vectors"].shape == (n, dim), len(a["iids"]) == n, len(a["primary"]) == n,
            len(a["leaf"]) == n, not n or 0 <= a["leaf"].min() <= a["leaf"].max() < n_nodes,
            a["centroids"].shape == (n_nodes, dim),
            all(len(a[x]) == n_nodes for x in ("radius", "parent", "level", "child0", "nchild")),
            a["bloom"].shape == (n_nodes, bloom_bytes),
            len(a["tenant_sizes"]) == n_tenants,
            len(a["sl_offsets"]) == len(a["sl_node"]) + 1 == len(a["sl_tenant"]) + 1,
            a["sl_offsets"][-1] == len(a["sl_slots"]),
            len(a["shared_slot"]) == len(a["shared_tenant"]),
            not len(a["sl_slots"]) or 0 <= a["sl_slots"].min() <= a["sl_slots"].max() < n,
            not len(a["sl_node"]) or a["sl_node"].max() < n_nodes,
        ]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CorruptIndex(f"tenant index in {directory} is unreadable: {exc}") from None
    if not all(checks):
        raise CorruptIndex(f"tenant index in {directory} is unreadable: array shapes do not match the manifest")
