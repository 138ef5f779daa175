"""What a sharded collection needs of its surroundings: a Ray cluster, the shard actor's class, and the
layout file (`<root>/sharded.json`: the collection name, shard count, routing and create options),
written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamina.index.errors import FailedPrecondition

LAYOUT = "sharded.json"


def ray_module() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - the dist extra is installed by `make test`
        raise FailedPrecondition("sharded collections run on Ray: pip install 'lamina[dist]'") from None
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start (or join, with `address`) a Ray cluster unless this process already has one.

    Lamina sets nothing about Ray's token authentication: Ray 2.60 turns it on for a new local
    cluster (generating ~/.ray/auth_token on first use) and reads the token from RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH or that file; joining a cluster needs that cluster's token. RAY_AUTH_MODE,
    if set at all, must be set before `ray` is imported (Ray caches it at import)."""
    ray = ray_module()
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)


def shard_class() -> type:
    from lamina.retrieval.sharded.shard import Shard

    return Shard


def plain_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Create options as JSON (configs as their dicts), for the layout file."""
    out = {}
    for key, value in options.items():
        out[key] = value.to_dict() if hasattr(value, "to_dict") else value
    return out


def read_layout(root: Path) -> dict[str, Any] | None:
    path = root / LAYOUT
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_layout(root: Path, layout: Mapping[str, Any]) -> None:
    tmp = root / (LAYOUT + ".tmp")
    with open(tmp, "w") as f:
        json.dump(layout, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / LAYOUT)
