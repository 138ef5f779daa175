"""What the generators share: a tokenizer-free token estimate and the check of a config dict."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from lamina.index.errors import InvalidArgument


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: the larger of 4 characters a token (OpenAI's rule of thumb for
    English) and 4/3 tokens a word, so that context budgets err on the safe side."""
    if not text:
        return 0
    return max(math.ceil(len(text) / 4), math.ceil(len(re.findall(r"\S+", text)) * 4 / 3))


def config_options(data: Mapping[str, Any], known: Iterable[str], kind: str) -> dict[str, Any]:
    """`data` less its "type", as keyword arguments; a key the generator does not take is InvalidArgument."""
    known = set(known)
    options = {key: value for key, value in data.items() if key != "type"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidArgument(f"{kind} generator config: unknown key(s) {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(sorted(known))})")
    return options
