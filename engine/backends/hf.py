"""The transformers backend: in-process forward passes on CPU or CUDA, with a KV cache."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import DynamicCache

from engine.backends.hf_batch import greedy_batch
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


class HfBackend:
    """Runs the frozen LM with transformers in this process."""

    def __init__(self, lm: LanguageModel, bridge: Bridge) -> None:
        self.lm = lm
        self.bridge = bridge

    @torch.inference_mode()
    def decode(self, embeds: torch.Tensor, settings: DecodeSettings) -> Iterator[DecodeEvent]:
        yield from decode(HfStepper(self.lm, self.bridge), embeds, settings)

    def decode_batch(self, sequences: list[torch.Tensor], settings: DecodeSettings
                     ) -> list[list[int]]:
        """Greedy ids for several prompts at once (descriptions and answers, no [RET])."""
        return greedy_batch(self.lm, self.bridge, sequences, settings)

    @torch.inference_mode()
    def last_hidden(self, embeds: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lm.hidden(embeds.unsqueeze(0))
        return hidden[0, -1]

    @torch.inference_mode()
    def last_hidden_batch(self, sequences: list[torch.Tensor]) -> torch.Tensor:
        lengths = torch.tensor([len(s) for s in sequences])
        width = int(lengths.max())
        padded = torch.stack([torch.cat([s, s.new_zeros(width - len(s), s.shape[1])])
                              for s in sequences])  # (N, T, D), right-padded
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long().to(padded.device)
        hidden, _ = self.lm.hidden(padded, attention_mask=mask)
        return hidden[torch.arange(len(sequences)), (lengths - 1).to(hidden.device)]
