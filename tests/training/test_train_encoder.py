"""A tiny real encoder adaptation: a few steps on RSICD images; the loss falls, files appear."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.training.config import DatasetSource, EncoderTrainConfig
from engine.training.contrastive import info_nce
from engine.training.train_encoder import train_encoder
from tests.paths import RSICD


def test_multi_positive_loss_prefers_the_right_pairs() -> None:
    image = torch.nn.functional.normalize(torch.eye(2, 4), dim=-1)  # (2, 4)
    text = image[[0, 0, 1]]  # two captions of image 0, one of image 1
    owner = torch.tensor([0, 0, 1])
    right = info_nce(text, image, torch.tensor(10.0), owner)
    wrong = info_nce(text, image, torch.tensor(10.0), torch.tensor([1, 1, 0]))
    assert float(right) < 0.01 < float(wrong)


def _tiny_dataset(tmp_path: Path) -> DatasetSource:
    data = json.loads((RSICD / "dataset_rsicd.json").read_text())
    train = [i for i in data["images"] if i["split"] == "train"][:8]
    val = [i for i in data["images"] if i["split"] == "val"][:4]
    broken = tmp_path / "broken.jpg"  # readable by name, not as an image: counted and skipped
    broken.write_bytes(b"not a jpeg")
    train.append({"filename": str(broken), "split": "train", "sentences": [{"raw": "x"}]})
    path = tmp_path / "dataset_tiny.json"
    path.write_text(json.dumps({"images": train + val}))
    return DatasetSource("tiny", str(path), str(RSICD / "images"))


@pytest.mark.real_weights
@pytest.mark.skipif(not RSICD.is_dir(), reason="needs the shared RSICD copy")
def test_tiny_adaptation_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = EncoderTrainConfig(epochs=3, batch_size=8, learning_rate=1e-3, head_learning_rate=3e-3,
                             warmup_steps=1, trainable_blocks=1, text_trainable_layers=1,
                             cached_views=1, out_dir=str(tmp_path / "out"),
                             feature_cache=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING):
        report = train_encoder(cfg, [_tiny_dataset(tmp_path)])
    assert "skipped 1 unreadable image file(s) of 9" in caplog.text
    losses = [h["loss"] for h in report["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert (report["train_images"], report["val_images"]) == (8, 4)
    weights = tmp_path / "out" / "visual.safetensors"
    assert weights.is_file() and weights.stat().st_size < 12_000_000  # fp16 image tower
    text = load_file(str(tmp_path / "out" / "text.safetensors"))  # what the run trained of it
    assert any(k.startswith("proj.") for k in text)
    assert {k.split(".")[3] for k in text if k.startswith("transformer.")} == {"5"}  # last layer
    saved = json.loads((tmp_path / "out" / "encoder.json").read_text())
    assert {"val_before", "val_after", "encoder_id", "config"} <= set(saved)
    assert list((tmp_path / "cache" / "encoder").glob("*view0*.safetensors"))


@pytest.mark.real_weights
@pytest.mark.skipif(not RSICD.is_dir(), reason="needs the shared RSICD copy")
def test_a_stopped_adaptation_resumes_to_the_same_weights(tmp_path: Path) -> None:
    source = _tiny_dataset(tmp_path)

    def config(out: str) -> EncoderTrainConfig:
        return EncoderTrainConfig(epochs=2, batch_size=4, warmup_steps=1, trainable_blocks=1,
                                  text_trainable_layers=1, cached_views=2, checkpoint_every=1,
                                  out_dir=str(tmp_path / out), feature_cache=str(tmp_path / "c"))

    train_encoder(config("straight"), [source])
    train_encoder(config("resumed"), [source], max_steps=1)  # "killed" after 1 of 4 steps
    train_encoder(config("resumed"), [source])
    straight = load_file(str(tmp_path / "straight" / "visual.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "visual.safetensors"))
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, msg=name)
