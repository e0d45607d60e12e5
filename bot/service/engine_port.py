"""What the conversation service needs from the engine: the boundary the bot codes against.

The real engine (``engine.create_engine``) and the tests' fake engine both satisfy it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from engine.answers import Seen
from engine.intent import Intent
from engine.types import GenerationOptions, GenerationResult, Turn


class EnginePort(Protocol):
    """The engine as the bot sees it. Vectors are float32 numpy arrays."""

    # Identifies the image encoder: cached image embeddings are keyed by (sha256, encoder_id).
    encoder_id: str
    # Identifies gallery embeddings (``embed_for_gallery``), cached under it as encoder_id.
    gallery_encoder_id: str
    # Identifies the bridge weights (what the /status reply names).
    bridge_id: str
    # Identifies the search space (the bridge weights and, where a search also scores with
    # the encoder's own towers, which and how much): gallery vectors made in another are
    # refused.
    search_id: str
    # Dimension of search vectors: gallery rows and queries.
    search_dim: int
    # A search vector's inner product times this is the score a hit shows (for the real
    # engine: the cosine less both sides' hubness, engine/hubness.py).
    score_scale: float

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Encoder embeddings, (N, D_img); cacheable by content hash."""
        ...

    def embed_for_gallery(self, images: Sequence[Image.Image]) -> np.ndarray:
        """What gallery vectors are made from, (N, D_img); never a prompt's image."""
        ...

    def generate(
        self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray],
        options: GenerationOptions | None = None,
    ) -> GenerationResult:
        """Reply to the dialogue; ``image_embeddings`` maps each ImagePart.sha256 to (D_img,)."""
        ...

    def stream(
        self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray],
        options: GenerationOptions | None = None,
    ) -> Iterator[str | GenerationResult]:
        """Like ``generate`` but yields text pieces as produced, then the GenerationResult."""
        ...

    def retrieve(
        self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Force [RET] after the dialogue; the normalised query vector, (search_dim,)."""
        ...

    def answer(self, intent: Intent, dialogue: Sequence[Turn], seen: Sequence[Seen],
               session: str | None = None) -> str:
        """The reply to a question (``intent``) about the images ``seen``."""
        ...

    def forget_session(self, session: str) -> None:
        """Drop what the engine keeps of a conversation between turns (its KV cache)."""
        ...

    def gallery_rows(self, image_embeddings: np.ndarray) -> np.ndarray:
        """What a gallery stores for each image, (N, search_dim), normalised."""
        ...

    def image_query(self, image_embeddings: np.ndarray) -> np.ndarray:
        """Searches by example ("more like this"), (N, search_dim), normalised."""
        ...
