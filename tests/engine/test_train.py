"""Bridge training on a tiny model: the loss falls, files are written, resume continues."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from engine.config import EngineConfig
from engine.tokens import CAPTION_PROMPT, SCENE_PROMPT, scene_answer
from engine.training.config import TrainConfig
from engine.training.questions import Question
from engine.training.train import TrainItem, epoch_examples, retrieval_examples, train_bridge
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
    """A short run of captions and in-batch retrieval only (the shipped recipe's dialogues and
    train-wide negatives are tested on their own).
    """
    base = TrainConfig(batch_size=4, epochs=6, warmup_steps=1, learning_rate=3e-3,
                       checkpoint_every=2, scene_question_ratio=0.0, dialogue_ratio=0.0,
                       retrieval_batch_size=0, retrieval_negatives="batch", feature_rotations=4,
                       out_dir=str(tmp_path))
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
    assert [e.exchanges for e in first] == [e.exchanges for e in again]
    scene = [e for e in first if e.exchanges[0][0] == SCENE_PROMPT]
    assert len(scene) == len(items)
    assert {e.exchanges[0][1] for e in scene} == {scene_answer(label) for _, label in CAPTIONS}
    assert [e.caption for e in epoch_examples(items, config, 1)] != [e.caption for e in first] \
        or len(items) < 3


def test_dialogues_describe_first_then_ask_the_image_s_own_questions() -> None:
    question = Question("presence", "Is there a river?", "Yes.", "yes")
    items = [TrainItem(torch.zeros(1, 8), ("a river flows past green fields",), "river",
                       (question,))]
    examples = epoch_examples(items, TrainConfig(scene_question_ratio=0.0, dialogue_ratio=1.0), 0)
    dialogue = [e for e in examples if len(e.exchanges) > 1]
    assert len(dialogue) == 1 and len(examples) == 2
    assert dialogue[0].exchanges == ((CAPTION_PROMPT, "a river flows past green fields"),
                                     ("Is there a river?", "Yes."))


def test_retrieval_stream_holds_every_image_once_per_epoch() -> None:
    items = _items(8)
    stream = retrieval_examples(items, TrainConfig(), 0)
    assert sorted(e.caption for e in stream) == sorted(c for c, _ in CAPTIONS)
    assert all(len(e.exchanges) == 1 for e in stream)


def test_retrieval_ranked_against_every_train_image_trains(tmp_path: Path) -> None:
    engine = tiny_engine()
    items = _items(engine.encoder.dim)
    requests = retrieval_examples(items, TrainConfig(), 0)
    assert sorted(e.image for e in requests if e.image is not None) == list(range(len(items)))
    config = _config(tmp_path, retrieval_negatives="train", retrieval_batch_size=2)
    history = train_bridge(items, engine.lm, engine.bridge, EngineConfig(), config, tmp_path)
    assert history["retrieval"][-1] < history["retrieval"][0]
