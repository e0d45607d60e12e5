"""Caption dataset loaders: both layouts, splits, unions, bad records counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from engine.training.config import DatasetSource
from engine.training.data import DatasetError, evaluation_records, load_source, load_sources


def _image(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / name)


def _karpathy(tmp_path: Path) -> DatasetSource:
    images = tmp_path / "k_images"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _image(images, name)
    data = {"images": [
        {"filename": "a.jpg", "split": "train", "label": "airport",
         "sentences": [{"raw": "planes at a terminal ."}, {"raw": "  "}]},
        {"filename": "b.jpg", "split": "val", "label": "river", "sentences": [{"raw": "a river"}]},
        {"filename": "c.jpg", "split": "train", "sentences": []},  # no caption: bad
        {"filename": "gone.jpg", "split": "train", "sentences": [{"raw": "x"}]},  # no file: bad
    ]}
    path = tmp_path / "dataset_k.json"
    path.write_text(json.dumps(data))
    return DatasetSource("k", str(path), str(images))


def _coco(tmp_path: Path) -> DatasetSource:
    images = tmp_path / "c_images"
    _image(images, "1.png")
    _image(images, "2.png")
    data = {"images": [{"id": 1, "file_name": "1.png"}, {"id": 2, "file_name": "2.png"},
                       {"id": 3, "file_name": "3.png"}],
            "annotations": [{"image_id": 1, "caption": "a farm"},
                            {"image_id": 1, "caption": "green fields"},
                            {"image_id": 3, "caption": "lost"}]}
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data))
    return DatasetSource("c", str(path), str(images))


def test_karpathy_layout_split_and_bad_records(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    source = _karpathy(tmp_path)
    with caplog.at_level(logging.WARNING):
        train = load_source(source, "train")
    assert [i.path.name for i in train] == ["a.jpg"]
    assert train[0].captions == ("planes at a terminal .",)  # the blank caption is dropped
    assert train[0].label == "airport" and train[0].split == "train" and train[0].source == "k"
    assert "skipped 2 bad record(s)" in caplog.text
    assert "1 with a missing image file" in caplog.text and "1 without captions" in caplog.text
    assert [i.path.name for i in load_source(source, "val")] == ["b.jpg"]


def test_coco_layout_detected_from_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        items = load_source(_coco(tmp_path), "val")
    assert [(i.path.name, i.captions, i.split) for i in items] == [
        ("1.png", ("a farm", "green fields"), "val")]
    assert "skipped 2 bad record(s)" in caplog.text  # 2.png without captions, 3.png missing


def test_union_of_sources(tmp_path: Path) -> None:
    items = load_sources([_karpathy(tmp_path), _coco(tmp_path)], "train")
    assert [i.key for i in items] == ["k/a.jpg", "c/1.png"]


def test_unknown_layout_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(DatasetError):
        load_source(DatasetSource("x", str(path), str(tmp_path)))


def test_evaluation_takes_the_first_images_or_a_seeded_sample(tmp_path: Path) -> None:
    images = tmp_path / "s_images"
    names = [f"{i:02d}.jpg" for i in range(20)]
    for name in names:
        _image(images, name)
    data = {"images": [{"filename": n, "split": "val", "sentences": [{"raw": "x"}]}
                       for n in reversed(names)]}
    (tmp_path / "s.json").write_text(json.dumps(data))
    source = [DatasetSource("s", str(tmp_path / "s.json"), str(images))]
    assert [r.path.name for r in evaluation_records(source, "val", 3)] == names[:3]
    drawn = [r.path.name for r in evaluation_records(source, "val", sample=5, seed=7)]
    assert drawn == sorted(drawn) and len(set(drawn)) == 5 and drawn != names[:5]
    assert drawn == [r.path.name for r in evaluation_records(source, "val", sample=5, seed=7)]
    assert drawn != [r.path.name for r in evaluation_records(source, "val", sample=5, seed=8)]
