"""Answer weighting in the bridge's loss: each answer alike, or each token alike."""

from __future__ import annotations

import random
from typing import Literal

import torch

from engine.tokens import CAPTION_PROMPT
from engine.training.objective import Example, Objective
from tests.engine.tiny import tiny_engine


def test_answer_weighting_gives_each_answer_the_same_total_weight() -> None:
    engine = tiny_engine()
    objective = Objective(engine.lm, engine.bridge, "sys", 16, answer_weighting="answer")
    answers = torch.tensor([0, 1, 1, 1, 1])  # "Yes."-like: one token; a caption: four
    weights = objective._answer_weights(answers)
    assert weights[:1].sum() == weights[1:].sum()
    assert torch.isclose(weights.sum(), torch.tensor(5.0))  # as many as there are tokens


def test_token_weighting_is_the_plain_mean_over_tokens() -> None:
    engine = tiny_engine()
    objective = Objective(engine.lm, engine.bridge, "sys", 16)
    assert torch.equal(objective._answer_weights(torch.tensor([0, 1, 1])), torch.ones(3))


def _caption_loss(examples: list[Example], weighting: Literal["token", "answer"]) -> float:
    engine = tiny_engine()
    objective = Objective(engine.lm, engine.bridge, "sys", 16, answer_weighting=weighting)
    with torch.no_grad():
        return float(objective(examples, random.Random(0)).caption)


def test_the_objective_applies_the_weighting_only_when_answer_lengths_differ() -> None:
    torch.manual_seed(0)
    caption = "many planes are parked near a terminal with a long runway beside it"
    features = torch.randn(tiny_engine().encoder.dim)
    long = Example.captioning(features, caption)
    short = Example(features, caption, ((CAPTION_PROMPT, caption), ("Is there a runway?", "Yes.")))
    assert _caption_loss([long, short], "token") != _caption_loss([long, short], "answer")
    assert _caption_loss([long, long], "token") == _caption_loss([long, long], "answer")
