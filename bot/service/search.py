"""Gallery searches for a conversation: a query vector (from ``[RET]``, ``/search`` or an
example image) to gallery hits. Every new search ranks the whole visible gallery again (the
best images, even if an earlier search showed them: asking again must not hide them); only
``/more`` continues the last search, skipping what it has shown. A search by example leaves
out the example, and the result it was if it is one the last search showed (replying "more
like this" to a result sends it back re-encoded by Telegram: another file, the same picture).
An upload's public original is still found: its label says what the picture is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.bot_config import BotConfig
from bot.errors import UserFacingError
from bot.replies import Hit
from bot.service.copies import fingerprint, same_picture
from bot.service.store_port import SavedSearch, StorePort
from bot.service.workers import Workers

NO_OWN_IMAGES = ("You have not sent me any images yet: every image you send joins your own "
                 "gallery, searchable only by you. /search <text> looks in the public gallery.")
# A search finds what is like its words and image; it cannot leave a thing out.
CANNOT_LEAVE_OUT = ("I can't leave things out of a search, only look for what is there: these "
                    "are the images most like yours.")
DEPTH_REACHED = ("That search has shown its {n} best images, as far as /more goes. Ask again "
                 "in other words for different ones.")
# Extra results fetched for a search by example, so that leaving out copies still leaves enough.
COPY_ROOM = 2


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
        best score per image), skipping the examples ``skip`` and, among the images the last
        search showed, their copies.

        A ``fresh`` search is remembered for ``/more`` and starts with nothing shown; a
        continued one skips what the search has shown and refuses past ``max_search_depth``.
        """
        io = self.workers.io
        # Read before a fresh search forgets them: the results an example may be a copy of.
        just_shown = await io(self.store.shown, uid) if skip else set()
        if fresh:
            await io(self.store.remember_search, uid, search)
        exclude = await io(self.store.shown, uid)
        if len(exclude) >= self.config.max_search_depth and not fresh:
            # Not "no more": there may well be more, this search just goes no deeper.
            raise UserFacingError(DEPTH_REACHED.format(n=self.config.max_search_depth))
        k = self.config.search_results
        n = k + COPY_ROOM if skip else k
        exclude = exclude | set(skip)
        hits = await io(self.store.search, uid, search.query, n, exclude, search.only_own)
        for more in extra if extra is not None else ():
            hits += await io(self.store.search, uid, more, n, exclude, search.only_own)
        best: dict[str, Hit] = {}
        for hit in sorted(hits, key=lambda h: -h.score):
            best.setdefault(hit.sha256, hit)
        ranked = list(best.values())[:n]
        shown_again = [hit for hit in ranked if hit.sha256 in just_shown]
        copies = await io(self._copies, skip, shown_again) if shown_again else set()
        found = [hit for hit in ranked if hit.sha256 not in copies][:k]
        # The examples and their copies count as shown, so /more leaves them out too.
        await io(self.store.mark_shown, uid, [*(h.sha256 for h in found), *skip, *copies])
        return tuple(found)

    def _copies(self, examples: Sequence[str], hits: Sequence[Hit]) -> set[str]:
        """The hits that are one of the examples in another file (reads files: run it in the
        I/O pool).
        """
        wanted = [fingerprint(data) for sha in examples
                  if (data := self.store.get_image(sha)) is not None]
        found = set()
        for hit in hits:
            try:
                mark = fingerprint(hit.read_bytes())
            except OSError:
                continue  # a file gone: the search shows what it can
            if any(same_picture(mark, example) for example in wanted):
                found.add(hit.sha256)
        return found


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
