"""A datastore of train captions and the image vectors they belong to.

What caption retrieval reads: the k-nearest-caption baseline (``neighbour_captions.py``) and,
later, descriptions whose prompt carries the captions of the image's nearest train images
(SmallCap, Ramos et al. 2023). It holds the train split only (``build_datastore`` refuses any
other record), so no held-out image's captions can be retrieved; users' uploads never enter it.

On disk (``save_datastore``), beside the weights: ``vectors.safetensors`` (N, D) float16
L2-normalised image vectors, and ``datastore.json``: the encoder id the vectors come from
(queries must be embedded by the same encoder) and every image in the short gallery layout
(``{"images": [{"file", "source", "label", "captions"}]}``, which ``parse_annotations`` reads).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from engine.model import ImageEncoder
from engine.training.data import CaptionedImage
from engine.training.features import cached_features

logger = logging.getLogger(__name__)

VECTORS = "vectors.safetensors"
INDEX = "datastore.json"
# The split a datastore may hold: captions of any other would leak references into outputs.
TRAIN_SPLIT = "train"


@dataclass(frozen=True)
class CaptionDatastore:
    """Train images' vectors and captions, row for row."""

    vectors: torch.Tensor  # (N, D) float32, L2-normalised
    keys: tuple[str, ...]  # "source/file name" of each row (CaptionedImage.key)
    captions: tuple[tuple[str, ...], ...]  # each row's captions, as released (repeats kept)
    labels: tuple[str | None, ...]  # each row's scene class, where known
    encoder_id: str  # the encoder (and feature) the vectors come from

    def __post_init__(self) -> None:
        rows = self.vectors.shape[0]
        if not rows == len(self.keys) == len(self.captions) == len(self.labels):
            raise ValueError(f"datastore rows disagree: {rows} vectors, {len(self.keys)} keys, "
                             f"{len(self.captions)} caption lists, {len(self.labels)} labels")


def build_datastore(encoder: ImageEncoder, records: Sequence[CaptionedImage],
                    cache_dir: Path) -> CaptionDatastore:
    """Embed the train ``records`` (image as it is) and keep their captions.

    Args:
        encoder: the frozen image encoder whose vectors neighbours are found by.
        records: train-split images with their captions.
        cache_dir: where the encoder's outputs are cached (``features.cached_features``).

    Raises:
        ValueError: a record is not from the train split, or has no captions.
    """
    foreign = [r.key for r in records if r.split != TRAIN_SPLIT or not r.captions]
    if foreign:
        raise ValueError(f"a caption datastore holds captioned train images only; "
                         f"{len(foreign)} are not, e.g. {foreign[:3]}")
    features, kept = cached_features(encoder, records, cache_dir)  # (1, N, D)
    return CaptionDatastore(
        vectors=F.normalize(features[0].float(), dim=-1),
        keys=tuple(r.key for r in kept),
        captions=tuple(r.captions for r in kept),
        labels=tuple(r.label for r in kept),
        encoder_id=encoder.encoder_id,
    )


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
    vectors = load_file(str(Path(folder) / VECTORS))["vectors"].float()  # (N, D)
    images = index["images"]
    return CaptionDatastore(
        vectors=F.normalize(vectors, dim=-1),  # float16 storage nudges the norms
        keys=tuple(f"{i['source']}/{i['file']}" for i in images),
        captions=tuple(tuple(i["captions"]) for i in images),
        labels=tuple(i.get("label") for i in images),
        encoder_id=str(index["encoder_id"]),
    )
