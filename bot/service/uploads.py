"""A chat's images: decoded within the limits, embedded once (the embedding cache, by sha256
and encoder), their GeoTIFF footprints kept, and indexed into the chat's private gallery
(from their gallery embeddings, as the shared gallery's images are).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from bot.bot_config import BotConfig
from bot.errors import UserFacingError
from bot.images import DecodedImage, TileRule, decode_image
from bot.service.engine_port import EnginePort
from bot.service.store_port import StorePort
from bot.service.workers import Workers
from engine.types import ImagePart, Turn

logger = logging.getLogger(__name__)

CAP_NOTICE = ("(Your image gallery is full: from now on, your oldest images leave it as new "
              "ones arrive. They stay in our conversations; only searches no longer find them.)")


class Uploads:
    """Decoding, embedding and indexing the images a chat sends."""

    def __init__(self, engine: EnginePort, store: StorePort, config: BotConfig,
                 workers: Workers) -> None:
        self.engine = engine
        self.store = store
        self.config = config
        self.workers = workers

    async def decode(self, data: bytes) -> DecodedImage:
        """An upload decoded within the size and pixel limits (raises ImageRejected)."""
        tiling = TileRule(self.config.model_input_side, self.config.tile_factor,
                          self.config.tile_grid)
        decode = functools.partial(
            decode_image, data, max_bytes=self.config.max_image_bytes,
            max_pixels=self.config.max_image_pixels, max_side=self.config.stored_image_side,
            tiling=tiling)
        return await self.workers.io(decode)

    async def embeddings(
        self, dialogue: Sequence[Turn], fresh: Sequence[DecodedImage]
    ) -> dict[str, np.ndarray]:
        """Encoder embedding of every image in the dialogue, computed once per sha256."""
        shas = [p.sha256 for t in dialogue for p in t.parts if isinstance(p, ImagePart)]
        return await self._cached(shas, fresh, self.engine.encoder_id, self.engine.embed_images)

    async def gallery_embeddings(
        self, shas: Sequence[str], fresh: Sequence[DecodedImage]
    ) -> dict[str, np.ndarray]:
        """What the images' gallery vectors are made from (``embed_for_gallery``), computed
        once per sha256: an upload indexed, or an example searched by ("more like this").
        """
        return await self._cached(shas, fresh, self.engine.gallery_encoder_id,
                                  self.engine.embed_for_gallery)

    async def _cached(self, shas: Sequence[str], fresh: Sequence[DecodedImage], encoder: str,
                      embed: Callable[[list[Image.Image]], np.ndarray]
                      ) -> dict[str, np.ndarray]:
        """Embeddings of ``shas`` from the store's cache under ``encoder``, the misses made by
        ``embed`` from ``fresh`` images or stored ones, and cached.
        """
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        found = await self.workers.io(self.store.cached_embeddings, wanted, encoder)
        missing = [sha for sha in wanted if sha not in found]
        if missing:
            pil = {image.sha256: image.image for image in fresh}
            images = [pil[sha] if sha in pil else await self.stored_image(sha) for sha in missing]
            vectors = await self.workers.model(embed, images)  # (N, D_img)
            computed = {sha: np.asarray(v, dtype=np.float32)
                        for sha, v in zip(missing, vectors, strict=True)}
            await self.workers.io(self.store.cache_embeddings, computed, encoder)
            found.update(computed)
        return found

    async def keep_footprints(self, images: Sequence[DecodedImage]) -> None:
        """Store each GeoTIFF's footprint with its image (read from the file, never guessed)."""
        for image in images:
            if image.geo is not None and image.geo.footprint is not None:
                await self.workers.io(self.store.put_footprint, image.sha256,
                                      image.geo.footprint.as_dict())

    async def index(self, uid: int, images: Sequence[DecodedImage]) -> str:
        """The chat's images join its private gallery; returns what to tell the chat, or ""."""
        shas = list(dict.fromkeys(image.sha256 for image in images))
        if not shas:
            return ""
        try:
            embeddings = await self.gallery_embeddings(shas, images)
            vectors = await self.workers.model(self.engine.gallery_rows,
                                               np.stack([embeddings[sha] for sha in shas]))
            done = await self.workers.io(self.store.index_uploads, uid, shas, vectors)
        except Exception:  # the reply is stored and must still be sent; searching can wait
            logger.exception("indexing %d upload(s) of user %d failed", len(shas), uid)
            return ""
        return CAP_NOTICE if done.first_overflow else ""

    async def stored_image(self, sha: str) -> Image.Image:
        """An earlier image of the conversation, read back from the store."""
        data = await self.workers.io(self.store.get_image, sha)
        if data is None:
            raise UserFacingError("An earlier image of this conversation is gone: try /reset.")
        return (await self.decode(data)).image


def with_locations(text: str, images: Sequence[DecodedImage]) -> str:
    """The reply plus what each georeferenced file says about where it is; nothing for plain
    photos (a location is never guessed from pixels).
    """
    notes = [(index, image.geo.describe()) for index, image in enumerate(images, 1)
             if image.geo is not None]
    if not notes:
        return text
    lines = [note if len(images) == 1 else f"Image {index}: {note}" for index, note in notes]
    return "\n\n".join([text, *lines])
