"""A datastore of train captions and the image vectors they belong to, and how it is read.

What caption retrieval reads: the k-nearest-caption baseline
(``engine/training/neighbour_captions.py``) and descriptions whose prompt carries the captions
of the image's nearest train images (``NeighbourHints``; SmallCap, Ramos et al. 2023). It
holds the train split only (``engine/training/caption_datastore.py`` builds it and refuses any
other record), so no held-out image's captions can be retrieved; users' uploads never enter it.

On disk (``save_datastore``), beside the weights: ``vectors.safetensors`` (N, D) float16
L2-normalised image vectors, and ``datastore.json``: the encoder id the vectors come from
(queries must be embedded by the same encoder) and every image in the short gallery layout
(``{"images": [{"file", "source", "label", "captions"}]}``, which ``parse_annotations`` reads).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load, save_file

from engine.consensus import CaptionConsensus

logger = logging.getLogger(__name__)

VECTORS = "vectors.safetensors"
INDEX = "datastore.json"
# The split a datastore may hold: captions of any other would leak references into outputs.
TRAIN_SPLIT = "train"
Votes = Literal["all", "distinct"]


@dataclass(frozen=True)
class CaptionDatastore:
    """Train images' vectors and captions, row for row."""

    vectors: torch.Tensor  # (N, D) float32, L2-normalised
    keys: tuple[str, ...]  # "source/file name" of each row (CaptionedImage.key)
    captions: tuple[tuple[str, ...], ...]  # each row's captions, as released (repeats kept)
    labels: tuple[str | None, ...]  # each row's scene class, where known
    encoder_id: str  # the encoder (and feature) the vectors come from
    digest: str = ""  # sha256 prefix of the vectors file it was loaded from ("" if built)

    def __post_init__(self) -> None:
        rows = self.vectors.shape[0]
        if not rows == len(self.keys) == len(self.captions) == len(self.labels):
            raise ValueError(f"datastore rows disagree: {rows} vectors, {len(self.keys)} keys, "
                             f"{len(self.captions)} caption lists, {len(self.labels)} labels")

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Each key's row (made once: every description looks its neighbours up)."""
        return {key: row for row, key in enumerate(self.keys)}


def save_datastore(store: CaptionDatastore, folder: Path) -> None:
    """Write ``vectors.safetensors`` (float16) and ``datastore.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"vectors": store.vectors.half().contiguous()}, str(folder / VECTORS),
              metadata={"encoder_id": store.encoder_id})
    images = [{"file": key.split("/", 1)[-1], "source": key.split("/", 1)[0], "label": label,
               "captions": list(captions)}
              for key, captions, label in zip(store.keys, store.captions, store.labels,
                                              strict=True)]
    index = {"encoder_id": store.encoder_id, "split": TRAIN_SPLIT, "images": images}
    (folder / INDEX).write_text(json.dumps(index, indent=0) + "\n")
    logger.info("caption datastore of %d images written to %s", len(images), folder)


def load_datastore(folder: Path) -> CaptionDatastore:
    """Read a datastore written by ``save_datastore``."""
    index = json.loads((Path(folder) / INDEX).read_text())
    raw = (Path(folder) / VECTORS).read_bytes()
    vectors = load(raw)["vectors"].float()  # (N, D)
    images = index["images"]
    return CaptionDatastore(
        vectors=F.normalize(vectors, dim=-1),  # float16 storage nudges the norms
        keys=tuple(f"{i['source']}/{i['file']}" for i in images),
        captions=tuple(tuple(i["captions"]) for i in images),
        labels=tuple(i.get("label") for i in images),
        encoder_id=str(index["encoder_id"]),
        digest=hashlib.sha256(raw).hexdigest()[:12],
    )


def nearest_rows(queries: torch.Tensor, query_keys: Sequence[str], store: CaptionDatastore,
                 k: int) -> list[list[int]]:
    """Each query's ``k`` nearest datastore rows, nearest first, its own row left out.

    Args:
        queries: (Q, D) image vectors from the datastore's encoder.
        query_keys: each query's key ("source/file name"); a key in the datastore is the same
            image, which is never its own neighbour.
        store: the datastore.
        k: neighbours per query (fewer when the datastore is smaller).
    """
    if len(query_keys) != queries.shape[0]:
        raise ValueError(f"{queries.shape[0]} query vectors but {len(query_keys)} keys")
    scores = F.normalize(queries.float(), dim=-1) @ store.vectors.T  # (Q, N)
    row_of = store.row_of
    for query, key in enumerate(query_keys):
        if key in row_of:
            scores[query, row_of[key]] = float("-inf")
    available = store.vectors.shape[0] - (1 if row_of.keys() & set(query_keys) else 0)
    top = scores.topk(min(k, available), dim=1).indices  # (Q, k)
    return [[int(r) for r in row] for row in top]


def ranked_captions(neighbour_captions: Sequence[Sequence[str]], votes: Votes = "all"
                    ) -> list[str]:
    """The neighbours' distinct captions (nearest neighbour first), most votes first.

    Ties go to the caption first met in that order, i.e. held by the nearer neighbour.
    """
    counts: Counter[str] = Counter()
    for captions in neighbour_captions:
        counts.update(dict.fromkeys(captions, 1) if votes == "distinct" else captions)
    if not counts:
        raise ValueError("no neighbour captions to choose from")
    return sorted(counts, key=lambda c: -counts[c])  # a stable sort keeps first-met order


@dataclass(frozen=True)
class NeighbourHints:
    """What a description prompt carries of an image's nearest train images: the ``shown``
    captions with most votes among its ``k`` nearest (all votes, as the k-nearest-caption
    baseline counts them, so the first is that baseline's caption).
    """

    store: CaptionDatastore
    k: int = 15
    shown: int = 3

    def for_vectors(self, vectors: torch.Tensor, keys: Sequence[str] | None = None
                    ) -> list[tuple[str, ...]]:
        """Each query's captions, best first. ``vectors``: (Q, D) in the datastore's space;
        ``keys``: each query's datastore key where it is a train image (never its own).
        """
        return [tuple(ranked_captions(near)[:self.shown])
                for near in self.neighbour_captions(vectors, keys)]

    def neighbour_captions(self, vectors: torch.Tensor, keys: Sequence[str] | None = None
                           ) -> list[list[tuple[str, ...]]]:
        """Each query's ``k`` nearest images' captions, nearest first (arguments as
        ``for_vectors``).
        """
        keys = keys if keys is not None else [""] * vectors.shape[0]
        rows = nearest_rows(vectors, keys, self.store, self.k)
        return [[self.store.captions[r] for r in near] for near in rows]

    def for_keys(self, keys: Sequence[str]) -> list[tuple[str, ...]]:
        """Each datastore image's captions from its nearest others (training's hints).

        Raises:
            KeyError: a key is not in the datastore (it was built from other images).
        """
        row_of = self.store.row_of
        missing = [k for k in keys if k not in row_of]
        if missing:
            raise KeyError(f"{len(missing)} images are not in the caption datastore, e.g. "
                           f"{missing[:3]}: rebuild it (`capret datastore`) from this split")
        return self.for_vectors(self.store.vectors[[row_of[k] for k in keys]], keys)


@dataclass(frozen=True)
class DescriptionHints:
    """The hints a bridge tuned with them (``Bridge.neighbour_hints``) is shown when it
    describes an image: ``hints`` of the image's vector in the datastore's space, which
    ``project`` makes from the pooled part of the engine's image feature.
    """

    hints: NeighbourHints
    project: Callable[[torch.Tensor], torch.Tensor]  # (N, D_pooled) -> (N, D)

    def captions(self, pooled: torch.Tensor) -> tuple[str, ...]:
        """The captions shown for one image's pooled feature (D_pooled,)."""
        return self.hints.for_vectors(self.project(pooled.float().unsqueeze(0)))[0]

    @cached_property
    def consensus(self) -> CaptionConsensus:
        """CIDEr-D with the datastore's document frequencies (made on first use, ~1 s)."""
        return CaptionConsensus(self.hints.store.captions)

    def agreement(self, pooled: torch.Tensor) -> Callable[[str], float]:
        """How far a description of the image with this pooled feature agrees with every
        caption of its ``k`` nearest train images (CIDEr-D, ``engine/consensus.py``).
        """
        near = self.hints.neighbour_captions(self.project(pooled.float().unsqueeze(0)))[0]
        return self.consensus.against([caption for captions in near for caption in captions])
