"""Gallery searches for a conversation: a query vector (from ``[RET]``, ``/search`` or an
example image) to gallery hits. Every new search ranks the whole visible gallery again (the
best images, even if an earlier search showed them: asking again must not hide them); only
``/more`` continues the last search, skipping what it has shown.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.bot_config import BotConfig
from bot.replies import Hit
from bot.service.store_port import SavedSearch, StorePort
from bot.service.workers import Workers

NO_OWN_IMAGES = ("You have not sent me any images yet: every image you send joins your own "
                 "gallery, searchable only by you. /search <text> looks in the public gallery.")


class GallerySearch:
    """Runs a conversation's searches against the store's gallery."""

    def __init__(self, store: StorePort, config: BotConfig, workers: Workers) -> None:
        self.store = store
        self.config = config
        self.workers = workers

    async def hits(self, uid: int, search: SavedSearch, fresh: bool,
                   extra: np.ndarray | None = None, skip: Sequence[str] = ()
                   ) -> tuple[Hit, ...]:
        """The best ``search_results`` images for ``search`` (and each ``extra`` query: the
        best score per image), skipping ``skip``.

        A ``fresh`` search is remembered for ``/more`` and starts with nothing shown; a
        continued one skips what the search has shown and stops after ``max_search_depth``.
        """
        io = self.workers.io
        if fresh:
            await io(self.store.remember_search, uid, search)
        exclude = await io(self.store.shown, uid)
        if len(exclude) >= self.config.max_search_depth and not fresh:
            return ()
        k = self.config.search_results
        exclude = exclude | set(skip)
        hits = await io(self.store.search, uid, search.query, k, exclude, search.only_own)
        for more in extra if extra is not None else ():
            hits += await io(self.store.search, uid, more, k, exclude, search.only_own)
        best: dict[str, Hit] = {}
        for hit in sorted(hits, key=lambda h: -h.score):
            best.setdefault(hit.sha256, hit)
        found = list(best.values())[:k]
        await io(self.store.mark_shown, uid, [hit.sha256 for hit in found])
        return tuple(found)


def found_text(hits: Sequence[Hit], only_own: bool = False) -> str:
    """The reply's text for a search: how many images were found, and where."""
    where = "among your images" if only_own else "in the gallery"
    if not hits:
        return f"I found no matching images {where}."
    source = "of your images" if only_own else "image(s) from the gallery"
    return f"Here {'is' if len(hits) == 1 else 'are'} {len(hits)} {source}."


def scope(text: str) -> tuple[bool, str]:
    """("mine harbour" -> only the chat's own images, "harbour")."""
    first, _, rest = (text or "").strip().partition(" ")
    if first.lower() == "mine":
        return True, rest.strip()
    return False, text
