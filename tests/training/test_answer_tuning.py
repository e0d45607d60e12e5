"""The answer-tuning stage on a tiny model: only the new answer maps move, the loss falls,
descriptions keep their prompt while questions get the tuned one, a stopped run resumes to the
same weights, and each pass mixes the kinds by their shares.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from engine.config import EngineConfig
from engine.model import RSCapRet
from engine.tokens import CAPTION_PROMPT, RET_TOKEN, SCENE_PROMPT, scene_answer
from engine.training.answer_tuning import tune_answers, tuning_examples
from engine.training.config import AnswerTuningConfig, TrainConfig
from engine.training.objective import dialogue_turns
from engine.training.questions import Question
from engine.training.train import TrainItem
from tests.engine.tiny import tiny_engine

RIVER = Question("presence", "Is there a river?", "Yes.", "yes")
BRIDGES = Question("count", "How many bridges?", "Two.", "2")
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


def test_only_the_new_answer_maps_move_and_the_loss_falls(tmp_path: Path) -> None:
    engine = tiny_engine()
    before = {k: v.clone() for k, v in engine.bridge.state_dict().items()}
    assert engine.bridge.answer_maps is None
    losses = tune_answers(_items(engine.encoder.dim), engine.lm, engine.bridge, EngineConfig(),
                          _config(steps=8), tmp_path)
    assert len(losses) == 8 and losses[-1] < losses[0]
    after = engine.bridge.state_dict()
    added = set(after) - set(before)
    assert added == {f"answer_maps.{name}" for name in engine.bridge.describe_maps.state_dict()}
    assert all(torch.equal(after[name], value) for name, value in before.items())
    assert any(not torch.equal(after[f"answer_maps.{name}"], value)
               for name, value in engine.bridge.describe_maps.state_dict().items())
    assert all(p.requires_grad for p in engine.bridge.parameters()), "left as it was found"


def test_descriptions_keep_their_prompt_while_questions_get_the_tuned_one(
        tmp_path: Path) -> None:
    untuned, tuned = tiny_engine(), tiny_engine()
    tune_answers(_items(tuned.encoder.dim), tuned.lm, tuned.bridge, EngineConfig(), _config(),
                 tmp_path)
    image = {"image": np.random.default_rng(0).standard_normal(tuned.encoder.dim, np.float32)}

    def prompt(engine: RSCapRet, *turns: tuple[str, str]) -> torch.Tensor:
        return engine._prompt_embeddings(dialogue_turns(turns), image,
                                         add_generation_prompt=True)

    for describe in (CAPTION_PROMPT, "describe this image"):
        torch.testing.assert_close(prompt(tuned, (describe, "")), prompt(untuned, (describe, "")))
    for asked in [((SCENE_PROMPT, ""),),
                  ((CAPTION_PROMPT, "a river."), ("Is there a river?", ""))]:
        assert not torch.equal(prompt(tuned, *asked), prompt(untuned, *asked))


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


def test_each_pass_draws_a_question_per_image_by_the_shares_and_repeats_the_rare() -> None:
    items = _items(8)
    scene = tuning_examples(items, AnswerTuningConfig(scene_share=1, dialogue_share=0,
                                                      rare_repeats=0), seed=0, epoch=0)
    assert sorted(e.exchanges[-1] for e in scene) == sorted(
        [(SCENE_PROMPT, scene_answer(label)) for _, label, _ in CAPTIONS if label])

    dialogues = tuning_examples(items, AnswerTuningConfig(scene_share=0, dialogue_share=1,
                                                          rare_repeats=0), seed=0, epoch=0)
    asked = sorted(e.exchanges for e in dialogues if len(e.exchanges) > 1)
    assert asked == [((CAPTION_PROMPT, "a river flows past green fields"),
                      ("Is there a river?", "Yes."))]
    # the images without questions answer the scene question instead; the unlabelled one
    # without questions teaches nothing (its description is not this stage's)
    assert len(dialogues) == 3

    counted = [TrainItem(torch.zeros(1, 8), ("two bridges cross a river",), "bridge",
                         (RIVER, BRIDGES))]
    examples = tuning_examples(counted, AnswerTuningConfig(scene_share=1, dialogue_share=0,
                                                           rare_repeats=3), seed=0, epoch=0)
    assert sorted(e.exchanges[-1] for e in examples) == sorted(
        [(SCENE_PROMPT, scene_answer("bridge"))] + [("How many bridges?", "Two.")] * 3)
    # answered by the prior, the count the train split gives bridges most often, not the
    # image's own
    three = Question("count", "How many bridges?", "Three.", "3")
    twos = [dataclasses.replace(counted[0], questions=(BRIDGES,)) for _ in range(3)]
    prior = tuning_examples([*twos, dataclasses.replace(counted[0], questions=(three,))],
                            AnswerTuningConfig(scene_share=0, rare_repeats=1,
                                               count_answers="prior"), seed=0, epoch=0)
    assert {e.exchanges[-1] for e in prior} == {("How many bridges?", "Two.")}
    searching = tuning_examples(items, AnswerTuningConfig(rare_repeats=0, retrieval_share=1),
                                seed=0, epoch=0)
    requests = [e.exchanges for e in searching if e.exchanges[-1][1] == RET_TOKEN]
    assert len(requests) == len(items)
    captions = {c for c, _, _ in CAPTIONS}
    assert all(first[0] == CAPTION_PROMPT and first[1] in captions
               and any(request.endswith(c) for c in captions)
               for first, (request, _) in requests)
    config = AnswerTuningConfig()
    assert [e.exchanges for e in tuning_examples(items, config, 0, 0)] == \
        [e.exchanges for e in tuning_examples(items, config, 0, 0)]


def test_a_kept_share_interpolates_the_answer_maps_in_weight_space(tmp_path: Path) -> None:
    start, full, half = tiny_engine(), tiny_engine(), tiny_engine()
    start.bridge.add_answer_maps()  # a copy of the description maps: where tuning starts
    items = _items(start.encoder.dim)
    tune_answers(items, full.lm, full.bridge, EngineConfig(), _config(), tmp_path / "full")
    config = _config()
    config = TrainConfig(answer_tuning=dataclasses.replace(config.answer_tuning, kept_share=0.5))
    tune_answers(items, half.lm, half.bridge, EngineConfig(), config, tmp_path / "half")
    for name, value in half.bridge.state_dict().items():
        expected = (start.bridge.state_dict()[name] + full.bridge.state_dict()[name]) / 2
        torch.testing.assert_close(value, expected, msg=name)
