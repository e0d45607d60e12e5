"""Every kind of question answered by a tiny random engine through RSCapRet.answer: what
each reply must say whatever the model's words (names the part, the image, the honest reply),
and presence judged by search only where the bridge holds a train image bank.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
import torch
from PIL import Image

from engine.answers import CANNOT_ANSWER, Seen, hedged_count
from engine.hubness import HubnessPrior
from engine.intent import read_intent
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.training.questions import Question, answer_is_right
from engine.types import GenerationResult
from tests.paths import RSICD


def _seen(engine: RSCapRet, name: str) -> Seen:
    image = Image.open(RSICD / "images" / name).convert("RGB")
    return Seen(name, image, engine.embed_images([image])[0])


def _ask(engine: RSCapRet, text: str, seen: list[Seen]) -> str:
    dialogue = [image_turn(text, *(s.key for s in seen))]
    return engine.answer(read_intent(text, len(seen)), dialogue, seen)


@pytest.fixture(scope="module")
def two(engine: RSCapRet) -> list[Seen]:
    return [_seen(engine, "00001.jpg"), _seen(engine, "00002.jpg")]


def test_a_part_is_named_in_its_answer(engine: RSCapRet, two: list[Seen]) -> None:
    assert _ask(engine, "what is in the top right?", two[:1]).startswith("In the top right:")
    assert _ask(engine, "what's on the left side?", two[:1]).startswith("On the left:")


def test_which_one_names_one_of_the_images(engine: RSCapRet, two: list[Seen]) -> None:
    reply = _ask(engine, "which one is the airport?", two)
    assert re.match(r"The (first|second) one: of the 2 images", reply)


def test_a_comparison_names_each_image(engine: RSCapRet, two: list[Seen]) -> None:
    reply = _ask(engine, "what changed between the two?", two)
    assert "The first image:" in reply and "The second image:" in reply


def test_a_pointer_past_the_images_is_told_so(engine: RSCapRet, two: list[Seen]) -> None:
    assert "no third image" in _ask(engine, "describe the third one", two)


def test_anything_else_gets_the_honest_reply(engine: RSCapRet, two: list[Seen]) -> None:
    assert _ask(engine, "what's your favourite colour?", two[:1]) == CANNOT_ANSWER


def test_untaught_things_are_judged_by_search_against_the_train_bank(
    engine: RSCapRet, two: list[Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    generate = engine.generate

    def counted(*args: Any, **kwargs: Any) -> GenerationResult:
        calls.append(args)
        return generate(*args, **kwargs)

    monkeypatch.setattr(engine, "generate", counted)
    monkeypatch.setattr(engine.bridge, "hubness", None)  # no bank: the model is asked
    _ask(engine, "do you see any waves?", two[:1])
    asked = len(calls)
    assert asked >= 1
    torch.manual_seed(0)
    unit = torch.nn.functional.normalize(torch.randn(50, engine.bridge.spec.shared_dim), dim=-1)
    monkeypatch.setattr(engine.bridge, "hubness", HubnessPrior(unit[:10], unit, 5.0))
    reply = _ask(engine, "do you see any waves?", two[:1])
    assert len(calls) == asked, "with a bank the search judges: no generation"
    assert reply.startswith(("Yes, it looks like", "I don't see any"))


def test_a_count_is_said_as_a_guess_and_keeps_its_number(
    engine: RSCapRet, two: list[Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "generate", lambda *a, **k: GenerationResult(text="Three."))
    reply = _ask(engine, "how many planes can you see?", two[:1])
    assert reply.startswith("Three, at a guess:")
    count = Question("count", "How many planes are there?", "Three.", "3")
    assert answer_is_right(count, reply), "the caveat adds no number of its own"
    assert not answer_is_right(replace(count, expected="2"), reply)


def test_only_a_bare_number_gets_the_caveat() -> None:
    assert hedged_count("two").startswith("two, at a guess:")
    assert hedged_count("12.").startswith("12, at a guess:")
    for reply in ("There are three roads.", "No.", ""):
        assert hedged_count(reply) == reply
