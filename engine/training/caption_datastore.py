"""Building the caption datastore (``engine/datastore.py``) from the train split.

It holds the train split only (``build_datastore`` refuses any other record), so no held-out
image's captions can be retrieved; users' uploads never enter it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch.nn.functional as F

from engine.datastore import TRAIN_SPLIT, CaptionDatastore
from engine.model import ImageEncoder
from engine.training.data import CaptionedImage
from engine.training.features import cached_features


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
