"""Large scenes in a conversation: their tiles embedded in one batch and captioned, the tiles
least like the whole named in the reply, and the newest scene per conversation kept in memory
for ``/tiles`` and ``/similar`` (a restart forgets them; tiles are not stored).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from bot.bot_config import BotConfig
from bot.errors import UserFacingError
from bot.images import DecodedImage
from bot.service.engine_port import EnginePort
from bot.service.uploads import Uploads
from bot.service.workers import Workers
from bot.tiles import TiledScene, notable, tile_lines, tile_sheet
from engine.prompt import image_turn
from engine.tokens import caption_prompt
from engine.types import GenerationOptions, ImagePart, Turn

# Large scenes kept in memory for /tiles (their tiles are not stored; a restart forgets them).
SCENES_KEPT = 64


class Scenes:
    """The newest large scene of each conversation, newest conversation last."""

    def __init__(self, engine: EnginePort, config: BotConfig, workers: Workers,
                 uploads: Uploads) -> None:
        self.engine = engine
        self.config = config
        self.workers = workers
        self.uploads = uploads
        self._scenes: OrderedDict[int, TiledScene] = OrderedDict()

    def get(self, uid: int) -> TiledScene | None:
        """The conversation's newest large scene, if one is kept."""
        return self._scenes.get(uid)

    async def describe(self, uid: int, images: Sequence[DecodedImage], reply: str) -> str:
        """For a large scene: caption its tiles (embedded in one batch) and name the ones
        least like the whole; kept for /tiles and /similar.
        """
        image = next((i for i in images if i.tiles), None)
        if image is None:
            return reply
        model = self.workers.model
        vectors = await model(self.engine.embed_images, [t.image for t in image.tiles])
        captions = [await self._caption(f"{image.sha256}:tile{i}", v)
                    for i, v in enumerate(vectors)]
        scene = TiledScene(image.sha256, image.tiles, tuple(captions), np.asarray(vectors))
        self._keep(uid, scene)
        whole = await self.uploads.embeddings([Turn("user", (ImagePart(image.sha256),))],
                                              [image])
        picked = notable(scene.vectors, whole[image.sha256], self.config.notable_tiles)
        return f"{reply}\n\n{tile_lines(scene, picked)}"

    async def sheet(self, uid: int) -> bytes:
        """A contact sheet (PNG) of the conversation's newest large scene, tile by tile."""
        scene = self._scenes.get(uid)
        if scene is None:
            side = int(self.config.model_input_side * self.config.tile_factor)
            raise UserFacingError(
                f"No large scene here yet: send a scene wider or taller than {side} pixels "
                "(as a file, to keep its full size) and I describe it tile by tile.")
        return await self.workers.io(tile_sheet, scene)

    def _keep(self, uid: int, scene: TiledScene) -> None:
        """Keep ``scene`` as the conversation's newest, forgetting the oldest beyond
        ``SCENES_KEPT``.
        """
        self._scenes[uid] = scene
        self._scenes.move_to_end(uid)
        while len(self._scenes) > SCENES_KEPT:
            self._scenes.popitem(last=False)

    async def _caption(self, key: str, vector: np.ndarray) -> str:
        """One tile's description, from its encoder embedding."""
        turn = image_turn(caption_prompt(1), key)
        options = GenerationOptions(allow_retrieval=False)
        result = await self.workers.model(self.engine.generate, [turn], {key: vector}, options)
        return result.text.strip() or "(no description)"
