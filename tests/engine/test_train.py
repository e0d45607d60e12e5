"""Bridge training on a tiny model: the loss falls, files are written, resume continues."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from engine.config import EngineConfig
from engine.training.config import TrainConfig
from engine.training.train import TrainItem, epoch_examples, train_bridge
from tests.engine.tiny import tiny_engine

CAPTIONS = [("many planes are parked near a terminal", "airport"),
            ("a river flows past green fields", "river"),
            ("storage tanks stand beside a road", "storagetanks"),
            ("a stadium is surrounded by buildings", "stadium")]


def _items(dim: int) -> list[TrainItem]:
    generator = torch.Generator().manual_seed(0)
    return [TrainItem(torch.randn(2, dim, generator=generator), (c,), label)
            for c, label in CAPTIONS]


def _config(tmp_path: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(batch_size=4, epochs=6, warmup_steps=1, learning_rate=3e-3,
                       checkpoint_every=2, scene_question_ratio=0.0, out_dir=str(tmp_path))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_loss_falls_and_outputs_are_written(tmp_path: Path) -> None:
    engine = tiny_engine()
    history = train_bridge(_items(engine.encoder.dim), engine.lm, engine.bridge, EngineConfig(),
                           _config(tmp_path), tmp_path)
    assert history["caption"][-1] < history["caption"][0]
    for name in ("bridge/bridge.safetensors", "bridge/bridge.json", "history.json", "loss.png",
                 "checkpoint.pt"):
        assert (tmp_path / name).is_file(), name


def test_resume_continues_to_the_same_weights(tmp_path: Path) -> None:
    straight, resumed = tiny_engine(), tiny_engine()
    items = _items(straight.encoder.dim)
    train_bridge(items, straight.lm, straight.bridge, EngineConfig(), _config(tmp_path / "a"),
                 tmp_path / "a")
    train_bridge(items, resumed.lm, resumed.bridge, EngineConfig(), _config(tmp_path / "b"),
                 tmp_path / "b", max_steps=4)  # "killed" after 4 of 6 steps
    train_bridge(items, resumed.lm, resumed.bridge, EngineConfig(), _config(tmp_path / "b"),
                 tmp_path / "b")
    for (name, a), (_, b) in zip(straight.bridge.state_dict().items(),
                                 resumed.bridge.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_epochs_are_reproducible_and_scene_questions_are_mixed_in() -> None:
    items = _items(8)
    config = TrainConfig(scene_question_ratio=1.0)
    first, again = epoch_examples(items, config, 0), epoch_examples(items, config, 0)
    assert [e.caption for e in first] == [e.caption for e in again]
    assert sum(e.scene_question for e in first) == len(items)
    assert [e.caption for e in epoch_examples(items, config, 1)] != [e.caption for e in first] \
        or len(items) < 3
