"""The conversation's side of answering a question: which images it is about (the chat's own,
or the results just shown) and their pixels and embeddings, handed to the engine's
``answer``. Results are kept per conversation in memory only: after a restart a question
about them is read as one about the conversation's own images.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from PIL import Image

from bot.replies import Hit
from bot.service.engine_port import EnginePort
from bot.service.turns import session_key
from bot.service.uploads import Uploads
from bot.service.workers import Workers
from engine.answers import Seen
from engine.intent import Intent
from engine.types import ImagePart, Turn

# Kinds that look at an image's pixels (a crop), not only its embedding; presence does only
# when it names a part ("is there a river on the left?").
NEEDS_PIXELS = frozenset({"region", "detail", "where"})
# Conversations whose last results are kept (the least recently searched are dropped first).
KEPT_RESULTS = 10_000


class Questions:
    """Resolves what a question is about and asks the engine."""

    def __init__(self, engine: EnginePort, workers: Workers, uploads: Uploads) -> None:
        self.engine = engine
        self.workers = workers
        self.uploads = uploads
        self._results: dict[int, tuple[Hit, ...]] = {}

    def shown(self, uid: int) -> tuple[Hit, ...]:
        """The images the conversation's last search showed (until a photo comes)."""
        return self._results.get(uid, ())

    def remember(self, uid: int, hits: Sequence[Hit]) -> None:
        """Keep what a search showed, for "describe the second one" (empty: forget it)."""
        self._results.pop(uid, None)
        if hits:
            self._results[uid] = tuple(hits)  # dicts keep insertion order: newest last
            if len(self._results) > KEPT_RESULTS:
                del self._results[next(iter(self._results))]

    async def answer(self, uid: int, intent: Intent, dialogue: Sequence[Turn],
                     embeddings: dict[str, np.ndarray]) -> str:
        """The engine's answer to ``intent`` about the conversation's images or its results."""
        if intent.results:
            seen = await self._results_seen(uid)
        else:
            seen = await self._own_seen(intent, dialogue, embeddings)
        return await self.workers.model(self.engine.answer, intent, dialogue, seen,
                                        session_key(uid))

    async def _own_seen(self, intent: Intent, dialogue: Sequence[Turn],
                        embeddings: dict[str, np.ndarray]) -> list[Seen]:
        shas = list(dict.fromkeys(p.sha256 for t in dialogue for p in t.parts
                                  if isinstance(p, ImagePart)))
        pixels = intent.kind in NEEDS_PIXELS or intent.region is not None
        return [Seen(sha, await self.uploads.stored_image(sha) if pixels else None,
                     embeddings[sha]) for sha in shas]

    async def _results_seen(self, uid: int) -> list[Seen]:
        hits = self.shown(uid)
        if not hits:
            return []
        images = await asyncio.gather(*(self.workers.io(_open, hit) for hit in hits))
        vectors = await self.workers.model(self.engine.embed_images, list(images))
        return [Seen(hit.sha256, image, vector)
                for hit, image, vector in zip(hits, images, vectors, strict=True)]


def _open(hit: Hit) -> Image.Image:
    with Image.open(hit.path) as image:
        return image.convert("RGB")
