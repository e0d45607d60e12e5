"""The exported checkpoint: the base LM's tensors bit for bit, [RET]'s row from the bridge, a
config vLLM can read (no GGUF note), the tokenizer with [RET], the template and the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from engine.backends.vllm_export import (
    EMBED_KEY,
    MANIFEST_FILE,
    PASSTHROUGH_TEMPLATE,
    TEMPLATE_FILE,
    ExportManifest,
)
from engine.model import RSCapRet

pytestmark = pytest.mark.real_weights


def test_tables_hold_the_base_rows_and_the_bridge_ret_row(hf_engine: RSCapRet,
                                                          checkpoint: Path) -> None:
    saved = load_file(str(checkpoint / "model.safetensors"))
    base = hf_engine.lm.model.state_dict()
    table = saved[EMBED_KEY]
    ret_id = hf_engine.lm.ret_id
    assert table.shape == (hf_engine.lm.vocab_size, hf_engine.lm.hidden_size)
    assert torch.equal(table[:ret_id], base[EMBED_KEY][:ret_id])
    assert torch.equal(table[ret_id], hf_engine.bridge.ret_embedding.detach())
    assert "lm_head.weight" not in saved  # tied: the head is the table, [RET] row included
    for name, tensor in saved.items():
        if name != EMBED_KEY:
            assert torch.equal(tensor, base[name]), name


def test_config_tokenizer_template_and_manifest(hf_engine: RSCapRet, checkpoint: Path) -> None:
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["vocab_size"] == hf_engine.lm.vocab_size
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert tokenizer.encode("[RET]", add_special_tokens=False) == [hf_engine.lm.ret_id]
    assert (checkpoint / TEMPLATE_FILE).read_text() == PASSTHROUGH_TEMPLATE
    manifest = ExportManifest(**json.loads((checkpoint / MANIFEST_FILE).read_text()))
    assert manifest.bridge_id == hf_engine.bridge_id and manifest.ret_id == hf_engine.lm.ret_id
    assert manifest.lm == hf_engine.lm.name and manifest.dtype == "float32"
