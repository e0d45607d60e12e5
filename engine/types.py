"""Plain data passed in and out of the engine: dialogue parts, turns, generation results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class TextPart:
    """A piece of text in a turn."""

    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image in a turn, named by its content hash; its embedding is passed separately."""

    sha256: str


Part = TextPart | ImagePart


@dataclass(frozen=True)
class Turn:
    """One message of a dialogue: who said it and its ordered parts."""

    role: Literal["user", "assistant"]
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class GenerationOptions:
    """Per-request overrides of the configured decoding; None keeps the config's value."""

    strategy: Literal["greedy", "sample", "beam"] | None = None
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    num_beams: int | None = None
    seed: int | None = None
    # False forbids [RET] (a pure captioning request); True allows the model to retrieve.
    allow_retrieval: bool = True
    # The conversation this turn belongs to: the backend may keep its KV for the next turn.
    session: str | None = None


@dataclass(frozen=True)
class GenerationResult:
    """What one generation produced.

    ``query`` is set when the model emitted [RET]: the [RET] hidden state projected into the
    shared space and L2-normalised, shape (search_dim,), ready for a gallery search.
    """

    text: str
    query: np.ndarray | None = None
    token_ids: tuple[int, ...] = field(default=(), repr=False)

    @property
    def retrieved(self) -> bool:
        return self.query is not None
