"""Fill the store's gallery with vectors from the engine: add, rebuild, search, seed.

The store keeps rows, files and the FAISS index; the engine makes the vectors
(``embed_for_gallery`` then ``gallery_rows``; text queries through ``retrieve``). Gallery
embeddings are cached by (sha256, gallery_encoder_id), so a rebuild after new bridge weights
only re-runs the bridge's projection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bot.config import AppConfig
from bot.service.engine_port import EnginePort
from engine.training.config import DatasetSource
from engine.training.data import CaptionedImage, parse_annotations
from engine.types import TextPart, Turn
from store import GalleryEntry, GalleryHit, NewImage, Store
from store.types import Visibility

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
# A bridge change re-embeds galleries up to this size on start; larger ones need the command.
AUTO_REBUILD_LIMIT = 20_000


@dataclass(frozen=True)
class AddReport:
    """What adding images did: rows added, images already there, files that failed."""

    added: int
    skipped: int
    failed: int


def collect(paths: Iterable[str | Path]) -> Iterator[CaptionedImage]:
    """Image files from folders (recursive; their captions.json used), files, or annotations."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            known = {s.path.name: s for s in _annotations(path / "captions.json")} if (
                path / "captions.json").is_file() else {}
            for file in sorted(path.rglob("*")):
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    yield known.get(file.name, CaptionedImage(file))
        elif path.suffix.lower() == ".json":
            yield from _annotations(path)
        elif path.is_file():
            yield CaptionedImage(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


def add_images(store: Store, engine: EnginePort, sources: Iterable[CaptionedImage],
               batch: int = 32, owner_user_id: int | None = None,
               visibility: Visibility = "public", progress: bool = False) -> AddReport:
    """Add images to the gallery in batches; already-present images are skipped (resumable)."""
    items = list(sources)
    added = skipped = failed = 0
    bar = _progress(len(items), progress)
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        a, s, f = _add_batch(store, engine, chunk, owner_user_id, visibility)
        added, skipped, failed = added + a, skipped + s, failed + f
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return AddReport(added, skipped, failed)


def rebuild(store: Store, engine: EnginePort, batch: int = 64, progress: bool = False) -> int:
    """Re-make every gallery vector with the engine's bridge, then rebuild the index."""
    total = 0
    bar = _progress(len(store.gallery), progress)
    for items in store.gallery.items(batch):
        shas = [sha for _, sha in items]
        vectors = engine.gallery_rows(_embeddings(store, engine, shas))
        store.gallery.set_vectors([i for i, _ in items], vectors, engine.search_id)
        total += len(items)
        if bar is not None:
            bar.update(len(items))
    if bar is not None:
        bar.close()
    store.gallery.rebuild_index()
    logger.info("gallery %r rebuilt: %d vectors from bridge %s", store.gallery.name, total,
                engine.search_id)
    return total


def search_text(store: Store, engine: EnginePort, text: str, k: int,
                user_id: int | None = None) -> list[GalleryHit]:
    """Gallery images for a text query, through the engine's [RET] path."""
    query = engine.retrieve([Turn("user", (TextPart(text),))], {})
    return store.gallery.search(query, k, engine.search_id, user_id=user_id)


def ensure_seed_gallery(store: Store, engine: EnginePort, config: AppConfig) -> int:
    """Index the shipped gallery on first start, or re-embed it when the bridge changed.

    Returns how many vectors were added or rebuilt (0 when already up to date).
    """
    folder = config.store.gallery.seed_folder
    done = 0
    current = store.gallery.bridge_id
    if current is not None and current != engine.search_id:
        if len(store.gallery) > AUTO_REBUILD_LIMIT:
            logger.warning("gallery vectors are from bridge %s, engine has %s: run "
                           "`capret gallery rebuild`", current, engine.search_id)
            return 0
        done += rebuild(store, engine)
    if folder and Path(folder).is_dir():
        sources = list(collect([folder]))
        shas = set(_shas(sources))
        if len(store.gallery.contains(shas)) < len(shas):
            done += add_images(store, engine, sources).added
    elif folder:
        logger.warning("seed gallery folder %s not found: retrieval has no images", folder)
    return done


def _add_batch(store: Store, engine: EnginePort, chunk: Sequence[CaptionedImage],
               owner: int | None, visibility: Visibility) -> tuple[int, int, int]:
    present = store.gallery.contains(_shas(chunk), owner)
    entries, failed = [], 0
    for source in chunk:
        try:
            image = NewImage.from_bytes(source.path.read_bytes(), f"gallery:{source.path}")
        except (OSError, ValueError) as exc:
            logger.warning("skipping %s: %s", source.path, exc)
            failed += 1
            continue
        if image.sha256 in present:
            continue
        present.add(image.sha256)
        store.repo.add_image(image, owner)
        entries.append(GalleryEntry(image.sha256, source.caption, source.label,
                                    str(source.path), owner, visibility))
    if entries:
        vectors = engine.gallery_rows(_embeddings(store, engine, [e.sha256 for e in entries]))
        store.gallery.add(entries, vectors, engine.search_id)
    return len(entries), len(chunk) - len(entries) - failed, failed


def _embeddings(store: Store, engine: EnginePort, shas: Sequence[str]) -> np.ndarray:
    """Gallery embeddings (N, D_img) of stored images, from the cache or the engine."""
    found = store.embeddings.get_or_compute(
        shas, engine.gallery_encoder_id,
        lambda todo: engine.embed_for_gallery([_open(store.blobs.path(sha)) for sha in todo]))
    return np.stack([found[sha] for sha in shas])


def _open(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _shas(sources: Sequence[CaptionedImage]) -> list[str]:
    import hashlib

    shas = []
    for source in sources:
        try:
            shas.append(hashlib.sha256(source.path.read_bytes()).hexdigest())
        except OSError:
            continue
    return shas


def _annotations(path: Path) -> list[CaptionedImage]:
    """The images of an annotation file (captions.json, Karpathy or COCO: see
    ``engine.training.data``), every split; files in its folder's images/ when there is one.
    """
    folder = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    source = DatasetSource(path.stem, str(path), str(folder))
    return list(parse_annotations(json.loads(path.read_text()), source))


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img")
