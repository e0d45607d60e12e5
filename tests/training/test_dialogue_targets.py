"""Which answers of a follow-up dialogue the loss teaches: the last, or every one."""

from __future__ import annotations

import random
from typing import Literal

import torch

from engine.tokens import CAPTION_PROMPT
from engine.training.objective import Example, Objective
from tests.engine.tiny import tiny_engine

CAPTION = "many planes are parked near a terminal"
DIALOGUE = ((CAPTION_PROMPT, CAPTION), ("Is there a runway?", "Yes."),
            ("How many planes are there?", "Two."))


def _objective(targets: Literal["last", "all"]) -> Objective:
    engine = tiny_engine()
    return Objective(engine.lm, engine.bridge, "sys", 16, dialogue_targets=targets)


def _taught_texts(objective: Objective, exchanges: tuple[tuple[str, str], ...]) -> list[str]:
    taught = objective._answer_sequence(Example(torch.zeros(4), CAPTION, exchanges))
    tokenizer = objective.lm.tokenizer
    texts = []
    for start, ids in taught.answers:
        assert taught.layout.ids[start:start + len(ids)] == ids  # each sits where it is taught
        assert ids[-1] in objective.lm.eos_ids  # and ends its turn
        texts.append(str(tokenizer.decode(list(ids[:-1]))).strip())
    return texts


def test_all_teaches_the_description_and_every_answer_in_order() -> None:
    assert _taught_texts(_objective("all"), DIALOGUE) == [CAPTION, "Yes.", "Two."]


def test_last_teaches_only_the_last_answer() -> None:
    assert _taught_texts(_objective("last"), DIALOGUE) == ["Two."]
    assert _taught_texts(_objective("all"), DIALOGUE[:1]) == [CAPTION]


def _caption_loss(examples: list[Example], targets: Literal["last", "all"]) -> float:
    torch.manual_seed(0)
    objective = _objective(targets)
    with torch.no_grad():
        return float(objective(examples, random.Random(0)).caption)


def test_the_loss_changes_only_for_dialogues() -> None:
    features = torch.randn(tiny_engine().encoder.dim, generator=torch.Generator().manual_seed(0))
    caption = Example.captioning(features, CAPTION)
    dialogue = Example(features, CAPTION, DIALOGUE)
    assert _caption_loss([caption, dialogue], "last") != _caption_loss([caption, dialogue], "all")
    assert _caption_loss([caption, caption], "last") == _caption_loss([caption, caption], "all")
