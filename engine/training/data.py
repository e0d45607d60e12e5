"""Caption datasets in the two published layouts, and unions of several sources.

The one reader of caption annotations: training, evaluation and the gallery builder
(``bot/gallery_builder.py``) all parse through ``parse_annotations``.

- Karpathy-style ``dataset_*.json`` (RSICD, UCM-Captions, Sydney-Captions):
  ``{"images": [{"filename", "split", "label"?, "sentences": [{"raw"}]}]}``; the shipped
  gallery's ``captions.json`` is the same layout with short keys
  (``{"images": [{"file", "label", "captions": [str]}]}``);
- COCO captions: ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``
  (no split field: the whole file is one split, named by the caller).
Bad records (missing image file, no usable caption) are counted, logged and skipped.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.training.config import DatasetSource

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionedImage:
    """One image file with its reference captions (none for a bare file), its dataset split,
    scene label and source name: what training, evaluation and the gallery builder read.
    """

    path: Path
    captions: tuple[str, ...] = ()
    split: str = "train"
    label: str | None = None
    source: str = ""

    @property
    def key(self) -> str:
        """A name unique across sources: ``source/file_name``."""
        return f"{self.source}/{self.path.name}"

    @property
    def caption(self) -> str | None:
        """The first reference caption, or None."""
        return self.captions[0] if self.captions else None


class DatasetError(ValueError):
    """An annotation file is in neither known layout."""


def load_sources(sources: Sequence[DatasetSource], split: str | None = None,
                 check_files: bool = True) -> list[CaptionedImage]:
    """The union of ``sources`` (optionally one split), sorted by source and file name."""
    items: list[CaptionedImage] = []
    for source in sources:
        items.extend(load_source(source, split, check_files))
    return items


def evaluation_records(sources: Sequence[DatasetSource], split: str,
                       limit: int | None = None, sample: int | None = None, seed: int = 0
                       ) -> list[CaptionedImage]:
    """What `capret eval` scores: the split's first ``limit`` images in file-name order, or
    ``sample`` of them drawn at random by ``seed`` (file-name order follows the classes, so a
    first few hundred hold a few classes; a sample holds them all in proportion).
    """
    records = sorted(load_sources(sources, split), key=lambda r: r.path.name)
    if sample is not None:
        drawn = random.Random(seed).sample(range(len(records)), min(sample, len(records)))
        records = [records[i] for i in sorted(drawn)]
    return records[:limit]


def load_source(source: DatasetSource, split: str | None = None, check_files: bool = True
                ) -> list[CaptionedImage]:
    """One annotation file's images (the split given, or all), bad records skipped."""
    raw = json.loads(Path(source.annotations).read_text())
    records = list(parse_annotations(raw, source, default_split=split or "train"))
    bad: Counter[str] = Counter()
    kept = []
    for item in records:
        if split is not None and item.split != split:
            continue
        problem = _problem(item, check_files)
        if problem:
            bad[problem] += 1
            continue
        kept.append(item)
    if bad:
        logger.warning("%s: skipped %d bad record(s): %s", source.annotations, sum(bad.values()),
                       ", ".join(f"{n} {why}" for why, n in sorted(bad.items())))
    return sorted(kept, key=lambda i: i.path.name)


def parse_annotations(raw: Any, source: DatasetSource, default_split: str = "train"
                      ) -> Iterable[CaptionedImage]:
    """Every record of a parsed annotation file (Karpathy or COCO layout, detected from its
    keys), unchecked; image paths are relative to ``source.images``.

    Raises:
        DatasetError: ``raw`` is in neither layout.
    """
    if not isinstance(raw, dict) or "images" not in raw:
        raise DatasetError(f"{source.annotations}: no 'images' list: not a caption dataset")
    if "annotations" in raw:
        return _parse_coco(raw, source, default_split)
    return _parse_karpathy(raw, source)


def _parse_karpathy(raw: dict[str, Any], source: DatasetSource) -> Iterable[CaptionedImage]:
    root = Path(source.images)
    for image in raw["images"]:
        name = image.get("filename") or image.get("file")
        if not name:
            continue
        texts = image.get("captions") or [s.get("raw", "") for s in image.get("sentences", [])]
        captions = tuple(c for c in (str(t).strip() for t in texts) if c)
        yield CaptionedImage(root / name, captions, str(image.get("split", "train")),
                             image.get("label"), source.name)


def _parse_coco(raw: dict[str, Any], source: DatasetSource, split: str
                ) -> Iterable[CaptionedImage]:
    root = Path(source.images)
    captions: dict[Any, list[str]] = {}
    for note in raw["annotations"]:
        captions.setdefault(note["image_id"], []).append(str(note.get("caption", "")).strip())
    for image in raw["images"]:
        texts = tuple(c for c in captions.get(image["id"], []) if c)
        yield CaptionedImage(root / image["file_name"], texts, split, image.get("label"),
                             source.name)


def _problem(item: CaptionedImage, check_files: bool) -> str | None:
    if not item.captions:
        return "without captions"
    if check_files and not item.path.is_file():
        return "with a missing image file"
    return None
