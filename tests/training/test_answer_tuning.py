"""The answer-tuning stage on a tiny model: only the prefix maps move, the loss falls, a
stopped run resumes to the same weights, and each pass mixes the three kinds by their shares.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from engine.config import EngineConfig
from engine.tokens import CAPTION_PROMPT, SCENE_PROMPT, scene_answer
from engine.training.answer_tuning import prefix_parameters, tune_answers, tuning_examples
from engine.training.config import AnswerTuningConfig, TrainConfig
from engine.training.questions import Question
from engine.training.train import TrainItem
from tests.engine.tiny import tiny_engine

RIVER = Question("presence", "Is there a river?", "Yes.", "yes")
CAPTIONS = [("many planes are parked near a terminal", "airport", ()),
            ("a river flows past green fields", "river", (RIVER,)),
            ("storage tanks stand beside a road", "storagetanks", ()),
            ("a stadium is surrounded by buildings", None, ())]


def _items(dim: int) -> list[TrainItem]:
    generator = torch.Generator().manual_seed(0)
    return [TrainItem(torch.randn(2, dim, generator=generator), (c,), label, questions)
            for c, label, questions in CAPTIONS]


def _config(steps: int = 6) -> TrainConfig:
    tuning = AnswerTuningConfig(steps=steps, batch_size=4, learning_rate=3e-3, warmup_steps=1,
                                checkpoint_every=2)
    return TrainConfig(answer_tuning=tuning)


def test_only_the_prefix_maps_move_and_the_loss_falls(tmp_path: Path) -> None:
    engine = tiny_engine()
    before = {k: v.clone() for k, v in engine.bridge.state_dict().items()}
    losses = tune_answers(_items(engine.encoder.dim), engine.lm, engine.bridge, EngineConfig(),
                          _config(steps=8), tmp_path)
    assert len(losses) == 8 and losses[-1] < losses[0]
    moved = {name for name, value in engine.bridge.state_dict().items()
             if not torch.equal(value, before[name])}
    prefix = {id(p) for p in prefix_parameters(engine.bridge)}
    expected = {n for n, p in engine.bridge.named_parameters() if id(p) in prefix}
    assert moved == expected and moved
    assert all(p.requires_grad for p in engine.bridge.parameters()), "left as it was found"


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    straight, resumed = tiny_engine(), tiny_engine()
    items = _items(straight.encoder.dim)
    tune_answers(items, straight.lm, straight.bridge, EngineConfig(), _config(), tmp_path / "a")
    tune_answers(items, resumed.lm, resumed.bridge, EngineConfig(), _config(), tmp_path / "b",
                 max_steps=3)  # "killed" after 3 of 6 steps
    tune_answers(items, resumed.lm, resumed.bridge, EngineConfig(), _config(), tmp_path / "b")
    for (name, a), (_, b) in zip(straight.bridge.state_dict().items(),
                                 resumed.bridge.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_each_pass_holds_every_image_once_as_the_shares_say() -> None:
    items = _items(8)
    scene = tuning_examples(items, AnswerTuningConfig(caption_share=0, scene_share=1,
                                                      dialogue_share=0), seed=0, epoch=0)
    assert len(scene) == len(items)
    assert sorted(e.exchanges[0][1] for e in scene if e.exchanges[0][0] == SCENE_PROMPT) == \
        sorted(scene_answer(label) for _, label, _ in CAPTIONS if label)
    unlabelled = [e for e in scene if e.exchanges[0][0] == CAPTION_PROMPT]
    assert [e.caption for e in unlabelled] == ["a stadium is surrounded by buildings"]

    dialogues = tuning_examples(items, AnswerTuningConfig(caption_share=0, scene_share=0,
                                                          dialogue_share=1), seed=0, epoch=0)
    asked = [e.exchanges for e in dialogues if len(e.exchanges) > 1]
    assert asked == [((CAPTION_PROMPT, "a river flows past green fields"),
                      ("Is there a river?", "Yes."))]
    config = AnswerTuningConfig()
    assert [e.exchanges for e in tuning_examples(items, config, 0, 0)] == \
        [e.exchanges for e in tuning_examples(items, config, 0, 0)]


def test_a_kept_share_interpolates_the_prefix_maps_in_weight_space(tmp_path: Path) -> None:
    start, full, half = tiny_engine(), tiny_engine(), tiny_engine()
    items = _items(start.encoder.dim)
    tune_answers(items, full.lm, full.bridge, EngineConfig(), _config(), tmp_path / "full")
    config = _config()
    config = TrainConfig(answer_tuning=dataclasses.replace(config.answer_tuning, kept_share=0.5))
    tune_answers(items, half.lm, half.bridge, EngineConfig(), config, tmp_path / "half")
    for name, value in half.bridge.state_dict().items():
        expected = (start.bridge.state_dict()[name] + full.bridge.state_dict()[name]) / 2
        torch.testing.assert_close(value, expected, msg=name)
