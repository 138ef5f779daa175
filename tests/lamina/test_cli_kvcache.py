"""`lamina kvcache warm`: a collection's chunks prefilled into the disk cache that the local generator reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamina.cli import main
from lamina.rag.types import Prompt, PromptPart

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TEXTS = {"a": "The capital of Freedonia is Zubrowka.", "b": "A river runs through the old town.",
         "c": "The bridge over the river is made of stone."}


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    """A tiny random Llama with a byte-level BPE and a chat template, saved so the real loading runs."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(list(TEXTS.values()), trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=specials[0], pad_token=specials[0],
                                        additional_special_tokens=specials[1:])
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    directory = tmp_path_factory.mktemp("chat-llama")
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def data_dir(tmp_path) -> Path:
    from lamina.retrieval.collection import Database

    with Database(tmp_path / "data") as db:
        coll = db.create_collection("docs", 4, encoder=None, sparse=False)
        for doc_id, text in TEXTS.items():   # written one by one: c is the most recent
            coll.upsert([{"id": doc_id, "text": text, "vector": np.ones(4, np.float32) / 2}], wait=True)
    return tmp_path / "data"


def warm(*args: str) -> str:
    result = CliRunner().invoke(main, ["kvcache", "warm", "--collection", "docs", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_warm_prefills_the_most_recent_chunks_once_and_the_generator_hits_them(chat_model, data_dir, tmp_path):
    from lamina.rag.generators.local import LocalGenerator
    from lamina.rag.kvcache import ChunkKVCache, Recompute

    cache_dir = tmp_path / "kv"
    common = ["--model", str(chat_model), "--cache-dir", str(cache_dir), "--data-dir", str(data_dir)]
    assert "2 chunks of 'docs': 2 prefilled" in warm("--top", "2", *common)
    assert len(list(cache_dir.glob("*.kv"))) == 2
    assert "0 prefilled, 2 already cached" in warm("--top", "2", *common)
    assert "1 prefilled" in warm("--ids", "a", *common)
    cache = ChunkKVCache(memory_bytes=0, disk_bytes=1 << 30, directory=cache_dir, recompute=Recompute("none"))
    generator = LocalGenerator(str(chat_model), prefiller=cache, max_new_tokens=2)
    prompt = Prompt(parts=(PromptPart("Context: "), PromptPart(TEXTS["c"], chunk_id="c"), PromptPart(" "),
                           PromptPart(TEXTS["b"], chunk_id="b"), PromptPart(" Question: which bridge?")))
    stats = generator.generate(prompt).stats
    assert (stats["hits"], stats["misses"]) == (2, 0) and stats["tokens_reused"] > 0


def test_warm_names_a_missing_chunk(chat_model, data_dir, tmp_path):
    result = CliRunner().invoke(main, ["kvcache", "warm", "--collection", "docs", "--ids", "a,zz", "--model",
                                       str(chat_model), "--cache-dir", str(tmp_path / "kv"), "--data-dir",
                                       str(data_dir)])
    assert result.exit_code != 0 and "zz" in result.output
