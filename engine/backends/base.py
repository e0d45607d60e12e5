"""The boundary between the engine and whatever runs the LM.

The engine builds the prompt embeddings itself (the LM's input table, the [RET] row and the
image prefixes), so a backend only decodes from embeddings and returns hidden states. The hf
backend does both in-process; a vLLM backend decodes on a server from ``prompt_embeds``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from engine.generate import DecodeEvent, DecodeSettings


class Backend(Protocol):
    """Decodes from prompt embeddings; gives last-layer hidden states for [RET]."""

    def decode(self, embeds: torch.Tensor, settings: DecodeSettings) -> Iterator[DecodeEvent]:
        """From prompt embeddings (T, D): token ids as chosen, then ``Finished``."""
        ...

    def forget_session(self, session: str) -> None:
        """Drop any state kept for ``session`` (a cross-turn KV cache); no-op when none."""
        ...

    def last_hidden(self, embeds: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden state (D,) at the last position of ``embeds`` (T, D)."""
        ...

    def last_hidden_batch(self, sequences: list[torch.Tensor]) -> torch.Tensor:
        """``last_hidden`` of several sequences (each (T_i, D)) at once: (N, D)."""
        ...
