"""`lamina serve`'s overload options: drain, encoder preload, the write encoding pool and the limits.

`serve_options` is a decorator that adds them to the serve command; `apply_serve_options` puts the
limits in force (`lamina.index.limits.configure`) and returns the keyword arguments for
`lamina.service.server.run`. Defaults are those of `lamina.index.limits` and `lamina.service`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lamina.index import limits
from lamina.service.work import DEFAULT_DRAIN_S, DEFAULT_WRITE_QUEUE, DEFAULT_WRITE_WORKERS

_LIMIT_HELP = {
    "max_id_bytes": "Bytes of a document id.",
    "max_text_bytes": "Bytes of a document's or a query's text (UTF-8).",
    "max_metadata_bytes": "Bytes of a document's metadata, as compact JSON.",
    "max_metadata_depth": "Nesting depth of a document's metadata.",
    "max_ef_k": "A dense stage's beam times its candidates (HNSW: max(ef_search, k) x k); RESOURCE_EXHAUSTED past it.",
    "max_candidates": "Candidates one search handles in all (stage limits + rerank kappa + graph limit).",
}


def serve_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the drain, preload, write-pool and limit options to `command` (they arrive as keywords)."""
    for name, help_text in reversed(list(_LIMIT_HELP.items())):
        command = click.option(f"--{name.replace('_', '-')}", name, type=click.IntRange(min=1),
                               default=getattr(limits.DEFAULTS, name), show_default=True, help=help_text)(command)
    command = click.option("--write-queue", type=click.IntRange(min=0), default=DEFAULT_WRITE_QUEUE,
                           show_default=True,
                           help="Upserts that may wait for the write pool; past them, RESOURCE_EXHAUSTED.")(command)
    command = click.option("--write-workers", type=click.IntRange(min=1), default=DEFAULT_WRITE_WORKERS,
                           show_default=True,
                           help="Threads that encode upserts carrying text (searches never wait for them).")(command)
    command = click.option("--preload/--no-preload", default=True, show_default=True,
                           help="Load every collection's encoders before health says SERVING.")(command)
    command = click.option("--drain-seconds", "drain", type=click.FloatRange(min=0), default=DEFAULT_DRAIN_S,
                           show_default=True,
                           help="At SIGTERM, health NOT_SERVING this long while calls are still served, "
                                "then stop (a second signal stops at once).")(command)
    return command


def apply_serve_options(options: dict[str, Any]) -> dict[str, Any]:
    """Configure this process's limits from `options`; return the rest, for `lamina.service.server.run`."""
    limits.configure(limits.Limits(**{name: options.pop(name) for name in _LIMIT_HELP}))
    return options
