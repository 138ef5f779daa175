"""Shared fixtures: a fake encoder so that most tests never load a model."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CRANFIELD = REPO.parent / "shared" / "datasets" / "cranfield"


class HashingEncoder:
    """Deterministic bag-of-words embeddings: each word hashes to a signed coordinate."""

    name = "hashing"

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    encode_documents = _encode
    encode_queries = _encode


@pytest.fixture
def fake_encoder_loader():
    encoder = HashingEncoder()
    return lambda name: encoder


@pytest.fixture(scope="session")
def cranfield() -> Path:
    if not (CRANFIELD / "corpus.jsonl").exists():
        pytest.skip(f"Cranfield dataset not found at {CRANFIELD} (it lives in the project's shared/ folder)")
    return CRANFIELD


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT saved as a sentence-transformers model, so the real loading code runs."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-bert")
    words = "wing lift drag heat transfer boundary layer flow shock pressure the a of and in sort list file".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    # transformers 5 builds the fast tokenizer from `vocab`, not from a vocab file
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)})
    bert_dir = root / "bert"
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    transformer = models.Transformer(str(bert_dir), max_seq_length=32)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model_dir = root / "st"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(model_dir))
    return model_dir


@pytest.fixture
def start_server():
    """Start `lamina serve --port 0` on a data directory in a subprocess; returns (process, target)."""
    started: list[subprocess.Popen] = []

    def start(data_dir: Path) -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lamina.cli", "serve", "--port", "0", "--data-dir", str(data_dir)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        started.append(proc)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            match = re.search(r"serving .* on (\S+:\d+)", line)
            if match:
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
                return proc, match.group(1)
        raise RuntimeError("server did not start within 120 s")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------- a tiny chat LM (generators, KV cache)
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TINY_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_SENTENCES = [
    "The capital of Freedonia is Zubrowka.", "Answer the question from the context.",
    "Café, naïve, façade: accents are two bytes in UTF-8.", "Question: what is the capital?",
    "Context: a river runs through the old town. 東京 is three bytes a character.",
]


def build_chat_tokenizer():
    """A byte-level BPE trained on a few sentences (multi-byte characters split over tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=TINY_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(TINY_SENTENCES, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>", additional_special_tokens=TINY_SPECIALS[1:])
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def build_tiny_llama(directory: Path, *, seed: int = 4, eos_token_id: int | None = None) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_chat_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    if eos_token_id is not None:
        model.generation_config.eos_token_id = eos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    # seed 4 answers the tests' prompt with 24 varied tokens (multi-byte characters among them) before any stop
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_llama_factory():
    """`build_tiny_llama(directory, *, seed=0, eos_token_id=None) -> directory`."""
    return build_tiny_llama
