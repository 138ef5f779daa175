"""The demo corpus `make run` serves when the data directory is empty.

Generated, not downloaded: the docstrings of Python's built-in functions and of a fixed list
of standard-library modules that import without side effects. That gives a few hundred short
technical documents to ask questions of ("how do I sort a list", "read a file line by line").
"""

from __future__ import annotations

import builtins
import importlib
import inspect
from collections.abc import Iterator
from typing import Any

DEMO_COLLECTION = "demo"
# all-MiniLM-L6-v2 + BM25 (the defaults), its token vectors for `--rerank`, and the two metadata fields
# indexed for `--filter`: module ("builtins", "os.path", ...) and kind ("function" or "class").
DEMO_OPTIONS: dict[str, Any] = {"multivector": True, "payload": {"module": "keyword", "kind": "keyword"}}
_MODULES = (
    "bisect", "collections", "csv", "datetime", "difflib", "functools", "glob", "hashlib", "heapq",
    "itertools", "json", "math", "os.path", "pathlib", "random", "re", "shutil", "statistics",
    "string", "textwrap", "zlib",
)


def _summary(doc: str | None) -> str:
    text = inspect.cleandoc(doc or "")
    return " ".join(text.split("\n\n", 2)[:2]).replace("\n", " ").strip()


def demo_documents() -> Iterator[dict[str, Any]]:
    """Points `{"id", "text", "metadata"}` for the demo collection, in a stable order."""
    seen: set[str] = set()
    sources = [("builtins", builtins)] + [(name, importlib.import_module(name)) for name in _MODULES]
    for module_name, module in sources:
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            obj = getattr(module, attr)
            if not (inspect.isroutine(obj) or inspect.isclass(obj)) or isinstance(obj, type) and issubclass(obj, BaseException):
                continue
            text = _summary(getattr(obj, "__doc__", None))
            doc_id = attr if module_name == "builtins" else f"{module_name}.{attr}"
            if len(text) < 40 or doc_id in seen:
                continue
            seen.add(doc_id)
            yield {"id": doc_id, "text": f"{doc_id}: {text}",
                   "metadata": {"module": module_name, "kind": "class" if inspect.isclass(obj) else "function"}}
