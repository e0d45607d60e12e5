"""The checkpoint both vLLM servers serve: the frozen base LM with the trained [RET] rows.

vLLM only knows token tables, so the bridge's [RET] input row (and, for an untied head, its
output row) is written into the LM's tables at [RET]'s id; every other tensor is the base LM's,
bit for bit. A manifest names the bridge the rows came from, and a pass-through chat template
lets the pooling server take a whole prompt as one ``prompt_embeds`` content part.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PretrainedConfig

from engine.bridge import Bridge
from engine.language import LanguageModel

logger = logging.getLogger(__name__)

MANIFEST_FILE = "capret-export.json"
TEMPLATE_FILE = "passthrough.jinja"
# The pooling server renders chat messages with this: the content (our prompt embeddings)
# goes through as it is, with no role markers and no generation prompt added.
PASSTHROUGH_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
EMBED_KEY = "model.embed_tokens.weight"
HEAD_KEY = "lm_head.weight"


@dataclass(frozen=True)
class ExportManifest:
    """What an exported checkpoint holds; written beside it as ``capret-export.json``."""

    bridge_id: str  # the bridge whose [RET] rows are in the tables
    lm: str  # the base LM (config name)
    ret_token: str
    ret_id: int
    vocab_size: int  # rows of the written tables (the base table plus [RET])
    hidden_size: int
    tied_head: bool
    dtype: str


def export_checkpoint(lm: LanguageModel, bridge: Bridge, bridge_id: str,
                      out: str | Path) -> ExportManifest:
    """Write a transformers checkpoint of ``lm`` with ``bridge``'s [RET] rows into ``out``.

    Args:
        lm: the frozen base LM, its tokenizer already holding [RET].
        bridge: the trained bridge (its ``ret_embedding`` / ``ret_output_row``).
        bridge_id: the engine's identity of those bridge weights, for the manifest.
        out: the folder to write (created; existing files of the same names are replaced).

    Returns:
        The manifest written beside the weights.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = lm.vocab_size
    state = _weights_with_ret(lm, bridge, vocab)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    _config_for(lm, vocab).save_pretrained(out)
    if lm.model.generation_config is not None:
        lm.model.generation_config.save_pretrained(out)
    lm.tokenizer.save_pretrained(out)
    (out / TEMPLATE_FILE).write_text(PASSTHROUGH_TEMPLATE)
    dtype = str(state[EMBED_KEY].dtype).removeprefix("torch.")
    manifest = ExportManifest(bridge_id, lm.name, lm.ret_token, lm.ret_id, vocab,
                              lm.hidden_size, lm.tied, dtype)
    (out / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2))
    logger.info("exported %s with [RET] id %d from %s into %s", lm.name, lm.ret_id, bridge_id, out)
    return manifest


def _weights_with_ret(lm: LanguageModel, bridge: Bridge, vocab: int) -> dict[str, torch.Tensor]:
    """The LM's tensors (CPU, contiguous) with [RET]'s rows written in (tables grown to
    ``vocab`` rows); a tied head is left out, as transformers saves it.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in lm.model.state_dict().items()}
    state[EMBED_KEY] = _with_row(state[EMBED_KEY], lm.ret_id, vocab, bridge.ret_embedding)
    if lm.tied:
        state.pop(HEAD_KEY, None)
    else:
        state[HEAD_KEY] = _with_row(state[HEAD_KEY], lm.ret_id, vocab, bridge.ret_output_row)
    return state


def _with_row(table: torch.Tensor, index: int, rows: int, row: torch.Tensor) -> torch.Tensor:
    """``table`` (V, D) grown to ``rows`` rows (new ones zero) with ``row`` (D,) at ``index``."""
    grown = table.new_zeros(rows, table.shape[1])
    grown[: table.shape[0]] = table
    grown[index] = row.detach().to(device="cpu", dtype=table.dtype)
    return grown.contiguous()


def _config_for(lm: LanguageModel, vocab: int) -> PretrainedConfig:
    """The LM's config for the grown tables; without the GGUF note of the embedded LM (its
    weights here are plain de-quantised tensors, and vLLM would try to read a GGUF file).
    """
    config: PretrainedConfig = copy.deepcopy(lm.model.config)
    config.vocab_size = vocab
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config
