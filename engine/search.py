"""How a search scores a gallery image: the bridge's match ([RET] state or example image
against the image, less hubness), and with an adapted text tower also the CLIP towers' own
cosine between the request (its words, or the example image) and the image.

The two are one inner product: each side's vectors are scaled and laid end to end, so a
gallery's index holds the rows as they are and a search score, ``score_scale`` times the
inner product, is ``(1 - share)`` times the bridge's score plus ``share`` times the CLIP
cosine. The towers of the adapted encoder find images by words about as well as the bridge
does, and differently: together they find more than either (docs/EXPERIMENTS.md, "Search by
both towers"). With a ``Basis`` the towers' vectors are first laid on a few principal
directions, so the gallery's vectors stay narrow while the cosine barely moves.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from engine.bridge import Bridge
from engine.hubness import SCORE_SCALE
from engine.tokens import RETRIEVAL_PROMPTS
from engine.types import TextPart, Turn


class ClipTowers(Protocol):
    """The encoder's CLIP space: images (from their pooled feature) and words."""

    def project(self, pooled: torch.Tensor) -> torch.Tensor: ...

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor: ...


class SearchSpace:
    """Gallery rows and queries, (N, dim) and L2-normalised, for one bridge and encoder."""

    def __init__(self, bridge: Bridge, bridge_id: str, towers: ClipTowers | None = None,
                 share: float = 0.0, text_weights: str | None = None,
                 basis: Basis | None = None) -> None:
        if not 0.0 <= share < 1.0:
            raise ValueError(f"search.clip_share must be in [0, 1), not {share}")
        self.bridge = bridge
        self.towers = towers if share > 0 else None
        self.share = share if self.towers is not None else 0.0
        # Bridge part scaled by a, CLIP part by c: SCORE_SCALE * (a^2 q.r + c^2 cos) once
        # both sides are normalised again (by the same norm) is the shared-out score.
        self._a = math.sqrt(1.0 - self.share)
        self._c = math.sqrt(self.share / SCORE_SCALE)
        self.score_scale = SCORE_SCALE * (self._a ** 2 + self._c ** 2)
        self.basis = basis if self.towers is not None else None
        self.search_id = bridge_id if self.towers is None else (
            f"{bridge_id}+clip{self.share:g}-{_digest(text_weights)}"
            + (f"-{self.basis.name}" if self.basis is not None else ""))
        clip_dim = 0 if self.towers is None else self._words(["x"], torch.device("cpu")).shape[1]
        self.dim = bridge.search_dim + int(clip_dim)

    def rows(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D_img) -> (N, dim): what a gallery stores for each image."""
        return self._joined(self.bridge.gallery_rows(image_embeddings),
                            lambda: self._images(image_embeddings))

    def text_queries(self, ret_hidden: torch.Tensor, words: Sequence[str]) -> torch.Tensor:
        """(N, D) [RET] states and the words each search asked -> (N, dim)."""
        return self._joined(self.bridge.text_queries(ret_hidden),
                            lambda: self._words(words, ret_hidden.device))

    def image_queries(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D_img) -> (N, dim): searches by example ("more like this")."""
        return self._joined(self.bridge.image_queries(image_embeddings),
                            lambda: self._images(image_embeddings))

    def _joined(self, bridge_part: torch.Tensor, clip_part: Callable[[], torch.Tensor]
                ) -> torch.Tensor:
        if self.towers is None:
            return bridge_part
        joined = torch.cat([self._a * bridge_part, self._c * clip_part()], dim=1)
        return F.normalize(joined, dim=-1)

    def _images(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        assert self.towers is not None
        pooled = image_embeddings[:, :self.bridge.spec.pooled_dim]
        return self._narrowed(F.normalize(self.towers.project(pooled), dim=-1))

    def _words(self, words: Sequence[str], device: torch.device) -> torch.Tensor:
        assert self.towers is not None
        return self._narrowed(F.normalize(self.towers.embed_texts(words), dim=-1).to(device))

    def _narrowed(self, vectors: torch.Tensor) -> torch.Tensor:
        if self.basis is None:
            return vectors
        directions = self.basis.directions.to(vectors.device, vectors.dtype)
        return F.normalize(vectors @ directions, dim=-1)


class Basis:
    """The first principal directions of a set of CLIP vectors (E, k): the towers' part of a
    search on them loses little of its ranking at a fraction of the width.

    Uncentred (the cosine is about the origin) and with each direction's sign fixed (its
    largest entry positive), so that every process makes the same basis from the same
    vectors: gallery rows stored by one are searched by another's queries.
    """

    def __init__(self, vectors: torch.Tensor, dims: int, name: str) -> None:
        if not 0 < dims <= vectors.shape[1]:
            raise ValueError(f"search.clip_dims must be in 1..{vectors.shape[1]}, not {dims}")
        # The right singular vectors, from the (E, E) Gram matrix: a tenth of an SVD's time.
        x = vectors.double()
        _, eigenvectors = torch.linalg.eigh(x.T @ x)  # ascending eigenvalues
        directions = eigenvectors.flip(1)[:, :dims]  # (E, dims), orthonormal columns
        largest = directions.abs().argmax(dim=0)
        signs = directions[largest, torch.arange(dims)].sign()
        self.directions = (directions * signs).float()
        self.name = f"pc{dims}-{name}"


def search_words(dialogue: Sequence[Turn]) -> str:
    """The words a search asks for: its last user turn's text, less the request phrasing
    around them where it is one of ``RETRIEVAL_PROMPTS`` (how the chat asks for its
    searches). The text tower learnt captions, not requests.
    """
    turns = [t for t in dialogue if t.role == "user"]
    text = " ".join(p.text for p in turns[-1].parts if isinstance(p, TextPart)) if turns else ""
    text = text.strip()
    for phrasing in RETRIEVAL_PROMPTS:
        opening = phrasing.split("{query}")[0]
        if text.lower().startswith(opening.lower()) and len(text) > len(opening):
            return text[len(opening):].strip()
    return text


def _digest(path: str | None) -> str:
    """Which text tower: a sha256 prefix of its weights file."""
    if path is None:
        return "base"
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
