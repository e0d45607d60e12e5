"""The reference the continuous batcher must match: one prompt decoded alone, prefilling
everything, over a plain transformers cache (no shared batch, no cross-turn reuse).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import DynamicCache

from engine.backends.hf import HfBackend
from engine.bridge import Bridge
from engine.generate import DecodeEvent, DecodeSettings, decode
from engine.language import LanguageModel


class HfStepper:
    """One prompt's incremental forward passes over a DynamicCache."""

    def __init__(self, lm: LanguageModel, bridge: Bridge) -> None:
        self.lm = lm
        self.bridge = bridge
        self.cache: DynamicCache | None = None
        self.length = 0

    def prefill(self, embeds: torch.Tensor, batch: int) -> torch.Tensor:
        self.cache = DynamicCache(config=self.lm.model.config)
        batched = embeds.unsqueeze(0).expand(batch, -1, -1)  # (B, T, D)
        hidden, self.cache = self.lm.hidden(batched, past=self.cache)  # type: ignore[assignment]
        self.length = embeds.shape[0]
        return hidden[:, -1]

    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        device = self.lm.model.device
        token_ids = token_ids.to(device)
        embeds = self.lm.embed_ids(token_ids[:, None], self.bridge.ret_embedding)  # (B, 1, D)
        positions = torch.full((token_ids.shape[0], 1), self.length, device=device)
        hidden, self.cache = self.lm.hidden(embeds, past=self.cache, positions=positions)  # type: ignore[assignment]
        self.length += 1
        return hidden[:, -1]

    def reorder(self, rows: torch.Tensor) -> None:
        assert self.cache is not None
        self.cache.reorder_cache(rows.to(self.lm.model.device))  # type: ignore[arg-type]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm.logits(hidden, self.bridge.ret_output_row).cpu()


@torch.inference_mode()
def decode_alone(backend: HfBackend, embeds: torch.Tensor, settings: DecodeSettings
                 ) -> Iterator[DecodeEvent]:
    """``backend.decode`` outside its batch: what the batched decode must give."""
    yield from decode(HfStepper(backend.lm, backend.bridge), embeds, settings)
