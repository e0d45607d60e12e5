"""Caption datasets in the two published layouts, and unions of several sources.

- Karpathy-style ``dataset_*.json`` (RSICD, UCM-Captions, Sydney-Captions):
  ``{"images": [{"filename", "split", "label"?, "sentences": [{"raw"}]}]}``;
- COCO captions: ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``
  (no split field: the whole file is one split, named by the caller).
Bad records (missing image file, no usable caption) are counted, logged and skipped.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.training.config import DatasetSource

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionedImage:
    """One image with its reference captions."""

    path: Path
    captions: tuple[str, ...]
    split: str
    label: str | None
    source: str

    @property
    def key(self) -> str:
        """A name unique across sources: ``source/file_name``."""
        return f"{self.source}/{self.path.name}"


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
                       limit: int | None = None) -> list[CaptionedImage]:
    """The split's first ``limit`` images in file-name order: what `capret eval` scores."""
    return sorted(load_sources(sources, split), key=lambda r: r.path.name)[:limit]


def load_source(source: DatasetSource, split: str | None = None, check_files: bool = True
                ) -> list[CaptionedImage]:
    """One annotation file's images (the split given, or all), bad records skipped."""
    raw = json.loads(Path(source.annotations).read_text())
    records = list(_parse(raw, source, default_split=split or "train"))
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


def _parse(raw: Any, source: DatasetSource, default_split: str) -> Iterable[CaptionedImage]:
    if not isinstance(raw, dict) or "images" not in raw:
        raise DatasetError(f"{source.annotations}: no 'images' list: not a caption dataset")
    if "annotations" in raw:
        return _parse_coco(raw, source, default_split)
    return _parse_karpathy(raw, source)


def _parse_karpathy(raw: dict[str, Any], source: DatasetSource) -> Iterable[CaptionedImage]:
    root = Path(source.images)
    for image in raw["images"]:
        captions = tuple(str(s.get("raw", "")).strip() for s in image.get("sentences", []))
        yield CaptionedImage(root / image["filename"], tuple(c for c in captions if c),
                             str(image.get("split", "train")), image.get("label"), source.name)


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
