"""ConversationStore over the ``store`` package (repository, blobs, FAISS gallery).

Written against the store's announced facade: ``store.open_store(config, database_url)`` with
``.repo``, ``.blobs`` and ``.gallery``. The store is imported dynamically so the bot still loads
(and its tests run) while that API settles.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import AppConfig
from bot.ports import EnginePort
from bot.replies import Hit
from engine.types import Turn


class StoreAdapter:
    """Maps the service's needs onto the store facade."""

    def __init__(self, facade: Any) -> None:
        self.facade = facade
        self.repo = facade.repo

    def user_id(self, transport: str, external_id: str, name: str | None) -> int:
        return int(self.repo.get_or_create_user(transport, external_id, name).id)

    def context(self, user_id: int) -> list[Turn]:
        return list(self.repo.load_context(user_id))

    def append_exchange(self, user_id: int, user_turn: Turn, reply_turn: Turn) -> None:
        self.repo.append_turns(user_id, [user_turn, reply_turn])

    def reset(self, user_id: int) -> None:
        self.repo.reset(user_id)

    def history(self, user_id: int) -> list[Turn]:
        return list(self.repo.history(user_id))

    def export(self, user_id: int) -> bytes:
        return bytes(self.repo.export(user_id))

    def forget(self, user_id: int) -> None:
        self.repo.forget(user_id)

    def put_image(self, sha256: str, data: bytes) -> None:
        self.facade.blobs.put(data)

    def get_image(self, sha256: str) -> bytes | None:
        data = self.facade.blobs.get(sha256)
        return bytes(data) if data is not None else None

    def cached_embeddings(self, sha256s: Sequence[str], encoder_id: str) -> dict[str, np.ndarray]:
        return dict(self.repo.get_embeddings(list(sha256s), encoder_id))

    def cache_embeddings(self, vectors: dict[str, np.ndarray], encoder_id: str) -> None:
        self.repo.put_embeddings(vectors, encoder_id)

    def shown(self, user_id: int) -> set[int]:
        return set(self.repo.shown_images(user_id))

    def mark_shown(self, user_id: int, gallery_ids: Sequence[int]) -> None:
        self.repo.mark_shown(user_id, list(gallery_ids))

    def search(self, query: np.ndarray, k: int, exclude: set[int]) -> list[Hit]:
        results = self.facade.gallery.search(query, k=k, exclude=exclude)
        return [Hit(int(r.id), str(r.label or r.caption or ""), float(r.score), Path(r.path))
                for r in results]

    def gallery_size(self) -> int:
        return int(len(self.facade.gallery))


def open_conversation_store(
    config: AppConfig, engine: EnginePort, database_url: str | None
) -> StoreAdapter:
    """Open the store and index the seed gallery on first start."""
    store: Any = importlib.import_module("store")
    facade = store.open_store(config.store, database_url)
    if config.store.gallery.seed_folder:
        builder: Any = importlib.import_module("bot.gallery_builder")
        builder.ensure_seed_gallery(facade, engine, config)
    return StoreAdapter(facade)
