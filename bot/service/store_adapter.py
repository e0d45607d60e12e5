"""``StoreAdapter``: the service's ``StorePort`` over ``store.Store`` (its repository, image
files, embedding cache, shown images, user data and FAISS gallery).

Engine turns map to stored turns one to one (text parts and image references by sha256). The
images the service stores are its decoded, re-encoded PNGs, named by the sha256 of those bytes,
which is exactly how the store names them. Images shown by searches are remembered per
conversation (so ``/reset`` starts afresh); the last search's query vector is kept in the user's
settings, tagged with its conversation, so ``/more`` works across restarts and workers.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.replies import Hit
from bot.service.store_port import SavedSearch, UploadsIndexed
from engine.types import ImagePart, Part, TextPart, Turn
from store import (
    GalleryEntry,
    GalleryHit,
    NewImage,
    PartInput,
    StaleGalleryError,
    Store,
    StoredPart,
    StoredTurn,
)
from store.usage import UsageLedger

logger = logging.getLogger(__name__)
LAST_SEARCH = "last_search"
# Set once the chat has been told that its oldest images leave its gallery past the cap.
CAP_TOLD = "gallery_cap_told"


class StoreAdapter:
    """The service's StorePort on a real ``store.Store``; thread-safe like the store."""

    def __init__(self, store: Store, search_id: str, score_scale: float = 1.0) -> None:
        self.store = store
        self.repo = store.repo
        # Gallery searches are refused when the index was built in another search space
        # (``EnginePort.search_id``); the store calls it the vectors' bridge id.
        self.search_id = search_id
        self.score_scale = score_scale  # inner product -> the score a hit shows

    # ----- users and turns
    def user_id(self, transport: str, external_id: str, name: str | None) -> int:
        return self.repo.get_or_create_user(transport, external_id).id

    def context(self, user_id: int) -> list[Turn]:
        return [to_turn(t) for t in self.repo.load_context(user_id).turns]

    def user_context(self, transport: str, external_id: str,
                     name: str | None) -> tuple[int, list[Turn]]:
        uid, context = self.repo.user_context(transport, external_id)
        return uid, [to_turn(t) for t in context.turns]

    def append_exchange(self, user_id: int, user_turn: Turn, reply_turn: Turn) -> int | None:
        turns = self.repo.append_turns(
            user_id, [(t.role, to_parts(t)) for t in (user_turn, reply_turn)])
        return turns[-1].message_id

    def rate(self, user_id: int, turn_id: int, rating: int) -> None:
        self.store.feedback.rate(user_id, turn_id, rating)

    def reset(self, user_id: int) -> None:
        self.repo.reset(user_id)

    def history(self, user_id: int) -> list[Turn]:
        return [to_turn(t) for t in self.repo.history(user_id)]

    def export(self, user_id: int) -> bytes:
        with tempfile.TemporaryDirectory(prefix="capret-export-") as folder:
            return self.store.user_data.export(user_id, Path(folder) / "export.zip").read_bytes()

    def forget(self, user_id: int) -> None:
        report = self.store.user_data.forget(user_id)
        logger.info("forgot user %d (%d rows, %d files)", user_id, report.rows, report.files)

    # ----- images and embeddings
    def put_image(self, user_id: int, sha256: str, data: bytes) -> None:
        image = NewImage.from_bytes(data, source="upload")
        if image.sha256 != sha256:
            raise ValueError(f"image bytes hash to {image.sha256}, not {sha256}")
        self.repo.add_image(image, user_id)

    def put_footprint(self, sha256: str, footprint: dict[str, object]) -> None:
        self.store.footprints.put(sha256, footprint)

    def get_image(self, sha256: str) -> bytes | None:
        return self.store.blobs.get(sha256)

    def cached_embeddings(self, sha256s: Sequence[str], encoder_id: str) -> dict[str, np.ndarray]:
        return self.store.embeddings.get(sha256s, encoder_id)

    def cache_embeddings(self, vectors: dict[str, np.ndarray], encoder_id: str) -> None:
        self.store.embeddings.put(encoder_id, vectors)

    # ----- searches
    def shown(self, user_id: int) -> set[str]:
        return self.store.shown.of(self.repo.active_conversation(user_id))

    def mark_shown(self, user_id: int, sha256s: Sequence[str]) -> None:
        if sha256s:
            self.store.shown.mark(self.repo.active_conversation(user_id), sha256s)

    def remember_search(self, user_id: int, search: SavedSearch) -> None:
        vector = np.ascontiguousarray(search.query, dtype="<f4").tobytes()
        conversation = self.repo.active_conversation(user_id)
        saved = {"conversation_id": conversation,
                 "search_id": self.search_id,
                 "query": base64.b64encode(vector).decode("ascii"),
                 "only_own": search.only_own}
        self.repo.update_user(user_id, settings={LAST_SEARCH: saved})
        self.store.shown.clear(conversation)  # a new search: nothing shown yet

    def last_search(self, user_id: int) -> SavedSearch | None:
        saved = self.repo.get_user(user_id).settings.get(LAST_SEARCH)
        if not isinstance(saved, dict):
            return None
        if saved.get("conversation_id") != self.repo.active_conversation(user_id):
            return None  # a search of an earlier conversation
        if saved.get("search_id") != self.search_id:
            return None  # a query of another search space (or width)
        query = np.frombuffer(base64.b64decode(str(saved["query"])), dtype="<f4").copy()
        return SavedSearch(query, bool(saved.get("only_own", False)))

    def search(self, user_id: int, query: np.ndarray, k: int, exclude: set[str],
               only_own: bool = False) -> list[Hit]:
        hits = self.store.gallery.search(query, k, self.search_id, user_id=user_id,
                                         exclude=exclude, only_own=only_own)
        return [to_hit(h, self.store.blobs.path(h.sha256), user_id, self.score_scale)
                for h in hits]

    def index_uploads(self, user_id: int, sha256s: Sequence[str],
                      vectors: np.ndarray) -> UploadsIndexed:
        entries = [GalleryEntry(sha, source="upload", owner_user_id=user_id,
                                visibility="private") for sha in sha256s]
        try:
            done = self.store.gallery.add_private(user_id, entries, vectors, self.search_id)
        except StaleGalleryError as exc:  # searches refuse too, with the same hint
            logger.warning("upload not indexed: %s", exc)
            return UploadsIndexed(0)
        first = False
        if done.evicted and not self.repo.get_user(user_id).settings.get(CAP_TOLD):
            self.repo.update_user(user_id, settings={CAP_TOLD: True})
            first = True
        return UploadsIndexed(len(done.added), done.evicted, first)

    def private_count(self, user_id: int) -> int:
        return self.store.gallery.private_count(user_id)

    @property
    def usage(self) -> UsageLedger:
        """Per-person daily counters (the Telegram transport's limits and /stats)."""
        return self.store.usage

    def gallery_size(self) -> int:
        return len(self.store.gallery)

    def close(self) -> None:
        self.store.close()


def to_hit(hit: GalleryHit, path: Path, user_id: int | None = None,
           score_scale: float = 1.0) -> Hit:
    """A gallery hit as a reply shows it: labelled by its label (else its caption), its file
    at ``path``, its score scaled (``EnginePort.score_scale``), and ``sent_at`` set when it is
    ``user_id``'s own private image.
    """
    own = hit.visibility == "private" and user_id is not None and hit.owner_user_id == user_id
    return Hit(hit.item_id, hit.label or hit.caption or "", hit.score * score_scale, path,
               hit.sha256, hit.added_at if own else None)


def to_turn(turn: StoredTurn) -> Turn:
    """A stored turn as the engine sees it."""
    parts: list[Part] = [  # a StoredPart holds exactly one of sha256 and text
        ImagePart(p.sha256) if p.sha256 is not None else TextPart(p.text or "")
        for p in turn.parts]
    return Turn(turn.role, tuple(parts))


def to_parts(turn: Turn) -> list[PartInput]:
    """An engine turn's parts as the store takes them (images must be stored already)."""
    return [StoredPart.of_image(p.sha256) if isinstance(p, ImagePart)
            else StoredPart.of_text(p.text) for p in turn.parts]
