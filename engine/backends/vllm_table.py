"""The LM's input table alone: all the engine needs of the LM when a vLLM server runs it.

The engine still turns token ids into embeddings itself (to splice image prefixes and the
[RET] row in), so it needs the tokenizer, the config and the input embedding table, and none
of the layers: for LLaMA-2-7B that is 0.5 GB of the 13 GB. The table is read from the
safetensors shard that holds it, without loading the rest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoTokenizer, GenerationConfig, PretrainedConfig

from engine import embedded
from engine.config import EMBEDDED_LM, LanguageConfig
from engine.language import DTYPES, LanguageModel

logger = logging.getLogger(__name__)

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


class InputTable(nn.Module):
    """Stands in for the LM where only its input embeddings are used (same accessors)."""

    def __init__(self, table: torch.Tensor, config: PretrainedConfig,
                 generation_config: GenerationConfig | None) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding.from_pretrained(table, freeze=True)
        self.config = config
        self.generation_config = generation_config

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device


def load_input_table(config: LanguageConfig, device: torch.device) -> LanguageModel:
    """The configured LM's tokenizer, config and input table (no layers) on ``device``."""
    source = str(embedded.language_folder()) if config.model == EMBEDDED_LM else config.model
    tokenizer = AutoTokenizer.from_pretrained(source)
    lm_config = AutoConfig.from_pretrained(source)
    try:
        generation = GenerationConfig.from_pretrained(source)
    except OSError:  # no generation_config.json: eos comes from the tokenizer
        generation = None
    table = read_table(source).to(device=device, dtype=DTYPES[config.dtype])
    logger.info("loaded the input table of %s (%d x %d), not its layers", config.model,
                *table.shape)
    table_only = InputTable(table, lm_config, generation)
    return LanguageModel(table_only, tokenizer, config.ret_token, name=config.model)  # type: ignore[arg-type]


def read_table(source: str) -> torch.Tensor:
    """The input embedding tensor of a local folder or hub checkpoint (V, D)."""
    index = _fetch(source, INDEX_FILE)
    if index is None:
        shard = _fetch(source, SINGLE_FILE)
        if shard is None:
            raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in {source}")
        return _read(shard, None)
    weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
    name = _table_name(weight_map)
    shard = _fetch(source, weight_map[name])
    if shard is None:
        raise FileNotFoundError(f"{weight_map[name]} (holding {name}) not found in {source}")
    return _read(shard, name)


def _read(path: Path, name: str | None) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(name or _table_name(dict.fromkeys(handle.keys(), "")))


def _table_name(names: dict[str, str]) -> str:
    found = [n for n in names if n.endswith("embed_tokens.weight")]
    if len(found) != 1:
        raise KeyError(f"expected one '*embed_tokens.weight' tensor, found {found}")
    return found[0]


def _fetch(source: str, filename: str) -> Path | None:
    """``filename`` from a local folder, or downloaded from the hub (that file only)."""
    folder = Path(source)
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source, filename))
    except EntryNotFoundError:
        return None
