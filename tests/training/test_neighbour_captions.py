"""The k-nearest-caption baseline and its datastore, on tiny hand-made vectors: an image never
gets its own captions back, the commonest neighbour caption wins, only train images enter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from bot.cli.main import main
from engine.datastore import (
    CaptionDatastore,
    NeighbourHints,
    load_datastore,
    nearest_rows,
    ranked_captions,
    save_datastore,
)
from engine.training.caption_datastore import build_datastore
from engine.training.data import CaptionedImage
from engine.training.neighbour_captions import NeighbourCaptionConfig, neighbour_captions
from tests.paths import DEFAULT_CONFIG, PROJECT, RSICD


def _store() -> CaptionDatastore:
    """Four train images on a line; "a" is the query's own image in the leave-one-out case."""
    vectors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    return CaptionDatastore(
        vectors=torch.nn.functional.normalize(vectors, dim=-1),
        keys=("rsicd/a.jpg", "rsicd/b.jpg", "rsicd/c.jpg", "rsicd/d.jpg"),
        captions=(("own caption",) * 5,
                  ("a beach", "a beach", "waves", "sand", "sea"),
                  ("a beach", "a beach", "a beach", "a coast", "sea"),
                  ("a forest",) * 5),
        labels=("beach", "beach", "beach", "forest"),
        encoder_id="fake",
    )


def test_an_image_in_the_datastore_is_not_its_own_neighbour() -> None:
    store = _store()
    query = store.vectors[:1]  # image "a" itself
    rows = nearest_rows(query, ["rsicd/a.jpg"], store, k=3)
    assert rows == [[1, 2, 3]]
    # Its own five identical captions would win any vote; they are never offered.
    assert neighbour_captions(query, ["rsicd/a.jpg"], store,
                              NeighbourCaptionConfig(k=2)) == ["a beach"]


def test_a_held_out_image_votes_among_all_datastore_images() -> None:
    store = _store()
    query = store.vectors[:1]
    # A val image that looks like "a" gets "a"'s captions: it is a different image.
    assert nearest_rows(query, ["rsicd/val_1.jpg"], store, k=2) == [[0, 1]]
    assert neighbour_captions(query, ["rsicd/val_1.jpg"], store,
                              NeighbourCaptionConfig(k=1)) == ["own caption"]


def test_the_commonest_caption_wins_and_ties_go_to_the_nearer_neighbour() -> None:
    assert ranked_captions([["x", "y"], ["y", "z"], ["y"]]) == ["y", "x", "z"]
    assert ranked_captions([["near", "other"], ["far"]]) == ["near", "other", "far"]
    # Votes "all" counts an image's repeats; "distinct" one vote per neighbour.
    neighbours = [["solo"] * 5, ["shared", "x"], ["shared", "y"]]
    assert ranked_captions(neighbours, "all")[0] == "solo"
    assert ranked_captions(neighbours, "distinct")[0] == "shared"


def test_hints_are_the_best_voted_captions_of_other_images() -> None:
    hints = NeighbourHints(_store(), k=2, shown=2)
    query = _store().vectors[:1]
    # A train image never sees its own captions; a held-out look-alike does.
    assert hints.for_vectors(query, ["rsicd/a.jpg"]) == [("a beach", "sea")]
    assert hints.for_vectors(query) == [("own caption", "a beach")]


class _FakeEncoder:
    """Vectors from the images' mean colour (an ImageEncoder without a model)."""

    dim = 3
    encoder_id = "fake-encoder"
    grid_cells = 0

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([torch.tensor(im.resize((1, 1)).getpixel((0, 0)), dtype=torch.float)
                            for im in images])  # (N, 3)


def _record(folder: Path, name: str, colour: tuple[int, int, int], split: str
            ) -> CaptionedImage:
    path = folder / name
    Image.new("RGB", (8, 8), colour).save(path)
    return CaptionedImage(path, (f"caption of {name}",) * 5, split, "beach", "rsicd")


def test_build_save_load_keeps_train_images_only(tmp_path: Path) -> None:
    train = [_record(tmp_path, "t1.png", (200, 10, 10), "train"),
             _record(tmp_path, "t2.png", (10, 200, 10), "train")]
    store = build_datastore(_FakeEncoder(), train, tmp_path / "cache")
    save_datastore(store, tmp_path / "ds")
    again = load_datastore(tmp_path / "ds")
    assert again.keys == ("rsicd/t1.png", "rsicd/t2.png")
    assert again.captions == store.captions and again.encoder_id == "fake-encoder"
    assert torch.allclose(again.vectors, store.vectors, atol=1e-3)
    with pytest.raises(ValueError, match="train images only"):
        build_datastore(_FakeEncoder(), [_record(tmp_path, "v.png", (1, 2, 3), "val")],
                        tmp_path / "cache")


@pytest.mark.real_weights
@pytest.mark.skipif(not RSICD.is_dir(), reason="needs the shared RSICD copy")
def test_datastore_then_eval_commands(tmp_path: Path) -> None:
    """`capret datastore` on a few train images, then `capret eval --neighbour-captions`."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["engine"]["vision"]["weights"] = str(PROJECT / "weights/encoder/visual.safetensors")
    config["engine"]["vision"]["text_weights"] = str(PROJECT / "weights/encoder/text.safetensors")
    config["engine"]["bridge"]["weights"] = None
    source = {"name": "rsicd", "annotations": str(RSICD / "dataset_rsicd.json"),
              "images": str(RSICD / "images")}
    config["train"] = {"sources": [source], "feature_cache": str(tmp_path / "cache")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    store = tmp_path / "datastore"
    assert main(["--config", str(path), "datastore", "--out", str(store),
                 "--limit-images", "6"]) == 0
    out = tmp_path / "eval.json"
    assert main(["--config", str(path), "eval", "--neighbour-captions", str(store), "--k", "3",
                 "--limit", "2", "--examples", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    train_captions = {c for image in json.loads((store / "datastore.json").read_text())["images"]
                      for c in image["captions"]}
    assert len(report["captions"]) == 2 and set(report["captions"].values()) <= train_captions
    assert {"BLEU-4", "METEOR", "CIDEr", "distinct_captions_%"} <= set(report["metrics"])
