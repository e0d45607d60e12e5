"""The transformers backend: in-process forward passes on CPU or CUDA, with a KV cache.

``decode`` runs every request through one ``ContinuousBatcher``: concurrent conversations
share each decode step, and a conversation's KV is reused by its next turn.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import DynamicCache

from engine.batching import BatchedStepper, ContinuousBatcher
from engine.bridge import Bridge
from engine.config import BatchingConfig
from engine.generate import DecodeEvent, DecodeSettings, decode
from engine.kv_cache import common_prefix, from_cache, select_rows, to_cache
from engine.language import LanguageModel
from engine.padding import padding_mask, right_pad

# Fewer shared leading rows than this are not worth a second forward pass.
MIN_SHARED_ROWS = 8


class HfBackend:
    """Runs the frozen LM with transformers in this process."""

    def __init__(self, lm: LanguageModel, bridge: Bridge,
                 batching: BatchingConfig | None = None) -> None:
        self.lm = lm
        self.bridge = bridge
        self.batcher = ContinuousBatcher(lm, bridge, batching or BatchingConfig())

    @torch.inference_mode()
    def decode(self, embeds: torch.Tensor, settings: DecodeSettings) -> Iterator[DecodeEvent]:
        stepper = BatchedStepper(self.batcher, settings.session)
        try:
            yield from decode(stepper, embeds, settings)
        finally:
            stepper.close()

    def forget_session(self, session: str) -> None:
        self.batcher.cache.drop(session)

    @torch.inference_mode()
    def last_hidden(self, embeds: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lm.hidden(embeds.unsqueeze(0))
        return hidden[0, -1]

    @torch.inference_mode()
    def last_hidden_batch(self, sequences: list[torch.Tensor]) -> torch.Tensor:
        """The last hidden state of each sequence (N, D). The rows every sequence begins with
        (the chat template's system turn, a request's phrasing) run once and their KV is shared:
        a description's re-ranked candidates differ only in their last dozen tokens.
        """
        shared = _shared_rows(sequences)
        if shared < MIN_SHARED_ROWS:
            return self._last_hidden_padded(sequences, past=None, start=0)
        _, cache = self.lm.hidden(sequences[0][None, :shared],
                                  past=DynamicCache(config=self.lm.model.config))
        first = torch.zeros(len(sequences), dtype=torch.long, device=sequences[0].device)
        rows = select_rows(from_cache(cache), first)  # type: ignore[arg-type]
        return self._last_hidden_padded([s[shared:] for s in sequences],
                                        past=to_cache(rows, self.lm.model.config), start=shared)

    def _last_hidden_padded(self, sequences: list[torch.Tensor], past: DynamicCache | None,
                            start: int) -> torch.Tensor:
        """Right-padded sequences after ``start`` positions of ``past`` (their KV, or none)."""
        lengths = torch.tensor([len(s) for s in sequences])
        padded = right_pad(sequences)  # (N, T, D)
        width = padded.shape[1]
        mask = torch.cat([torch.ones(len(sequences), start, dtype=torch.long),
                          padding_mask(lengths, width)], dim=1)  # (N, start + T)
        positions = torch.arange(start, start + width)[None].expand(len(sequences), -1)
        hidden, _ = self.lm.hidden(padded, attention_mask=mask.to(padded.device), past=past,
                                   positions=positions.to(padded.device))
        return hidden[torch.arange(len(sequences)), (lengths - 1).to(hidden.device)]


def _shared_rows(sequences: list[torch.Tensor]) -> int:
    """How many leading rows all ``sequences`` have in common, leaving each at least one."""
    if len(sequences) < 2:
        return 0
    shared = min(common_prefix(sequences[0], s) for s in sequences[1:])
    return min(shared, min(len(s) for s in sequences) - 1)
