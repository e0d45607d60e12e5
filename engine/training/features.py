"""Frozen encoder outputs, computed once per (encoder, image list) and cached on disk."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from engine.dihedral import quarter_turned
from engine.model import ImageEncoder
from engine.training.data import CaptionedImage
from engine.training.trunk_cache import open_rgb

logger = logging.getLogger(__name__)
BATCH = 32


def cached_features(encoder: ImageEncoder, items: Sequence[CaptionedImage], cache_dir: Path,
                    rotations: int = 1) -> tuple[torch.Tensor, list[CaptionedImage]]:
    """Features (R, N, D) for ``rotations`` quarter-turns of each readable image, and those images.

    Unreadable image files are counted, logged and left out (the returned list says which
    remain). The cache file name holds the encoder id and a digest of the image list.
    """
    digest = hashlib.sha256("\n".join(str(i.path) for i in items).encode()).hexdigest()[:16]
    name = encoder.encoder_id.replace("/", "-")
    path = Path(cache_dir) / f"{name}__{digest}__r{rotations}.safetensors"
    if path.is_file():
        stored = load_file(str(path))
        keep = stored["kept"].tolist()
        return stored["features"], [items[i] for i in keep]
    features, keep = _compute(encoder, items, rotations)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"features": features.contiguous(), "kept": torch.tensor(keep)}, str(tmp))
    tmp.replace(path)
    return features, [items[i] for i in keep]


def _compute(encoder: ImageEncoder, items: Sequence[CaptionedImage], rotations: int
             ) -> tuple[torch.Tensor, list[int]]:
    keep: list[int] = []
    chunks: list[torch.Tensor] = []
    unreadable = 0
    for start in tqdm(range(0, len(items), BATCH), desc="image features", unit="batch"):
        images = []
        for index in range(start, min(start + BATCH, len(items))):
            image = open_rgb(items[index].path)
            if image is None:
                unreadable += 1
                continue
            keep.append(index)
            images.append(image)
        if images:
            chunks.append(torch.stack([encoder.embed(_rotated(images, r)) for r in
                                       range(rotations)]))  # (R, n, D)
    if unreadable:
        logger.warning("skipped %d unreadable image file(s)", unreadable)
    if not chunks:
        return torch.zeros(rotations, 0, encoder.dim), keep
    return torch.cat(chunks, dim=1).float(), keep


def _rotated(images: list[Image.Image], quarter_turns: int) -> list[Image.Image]:
    return [quarter_turned(im, quarter_turns) for im in images]
