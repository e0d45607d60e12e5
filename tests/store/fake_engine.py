"""A tiny EnginePort stand-in for gallery tests: deterministic vectors, no model."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from engine.types import TextPart, Turn


class VectorEngine:
    """Image embeddings from pixels; text queries from a hash; bridge = a seeded projection."""

    encoder_id = "fake-encoder"
    shared_dim = 8

    def __init__(self, bridge_id: str = "bridge-a") -> None:
        self.bridge_id = bridge_id
        self.embedded = 0
        seed = int(hashlib.sha256(bridge_id.encode()).hexdigest()[:8], 16)
        self._projection = np.random.default_rng(seed).normal(size=(12, self.shared_dim))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.embedded += len(images)
        rows = [np.asarray(i.convert("RGB").resize((2, 2)), np.float32).reshape(-1) - 127.5
                for i in images]
        return np.stack(rows).astype(np.float32)  # (N, 12)

    def image_query(self, image_embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(image_embeddings) @ self._projection
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def retrieve(self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, Any]) -> np.ndarray:
        text = " ".join(p.text for t in dialogue for p in t.parts if isinstance(p, TextPart))
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        v = np.random.default_rng(seed).normal(size=self.shared_dim)
        return (v / np.linalg.norm(v)).astype(np.float32)
