"""Descriptions that read the captions of images like it (SmallCap), on a tiny model: only the
description maps move and answers keep theirs; the chat shows the neighbour captions exactly
as training did, only when one image is described; a bridge that needs them refuses to start
without its datastore.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest
import torch

from engine.bridge import NeighbourHintSpec, load_bridge
from engine.config import BridgeConfig, EngineConfig
from engine.datastore import CaptionDatastore, DescriptionHints, NeighbourHints, save_datastore
from engine.factory import caption_datastore, description_hints
from engine.generate import BeamCandidate
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import (
    CAPTION_PROMPT,
    SCENE_PROMPT,
    asks_to_describe,
    with_neighbours,
    without_neighbours,
)
from engine.training.config import DescriptionTuningConfig, TrainConfig
from engine.training.description_tuning import hinted_examples, tune_descriptions
from engine.training.train import TrainItem
from engine.types import GenerationOptions, TextPart, Turn
from engine.vision import ClipImageEncoder
from tests.engine.tiny import tiny_engine

CAPTIONS = ["many planes are parked near a terminal", "a river flows past green fields",
            "storage tanks stand beside a road", "a stadium is surrounded by buildings"]
HINTS = [("planes stand at an airport .", "an airport"), ("a river .",), ("tanks .",), ()]


def _items(dim: int) -> list[TrainItem]:
    generator = torch.Generator().manual_seed(0)
    return [TrainItem(torch.randn(2, dim, generator=generator), (c,), None, (), f"rsicd/{i}.jpg")
            for i, c in enumerate(CAPTIONS)]


def _config(steps: int = 8) -> TrainConfig:
    tuning = DescriptionTuningConfig(steps=steps, batch_size=4, learning_rate=3e-3,
                                     warmup_steps=1, checkpoint_every=4, neighbours=2, shown=2)
    return TrainConfig(description_tuning=tuning)


def test_the_prompt_keeps_its_request_after_the_neighbour_captions() -> None:
    hinted = with_neighbours(CAPTION_PROMPT, ["a beach with waves .", "sea  and\nsand"])
    assert hinted == ("Images like this one are described as: a beach with waves; sea and "
                      "sand.\nDescribe this image.")
    assert without_neighbours(hinted) == CAPTION_PROMPT and asks_to_describe(hinted)
    assert with_neighbours(CAPTION_PROMPT, []) == CAPTION_PROMPT
    assert not asks_to_describe(with_neighbours(SCENE_PROMPT, ["a beach"]))


def test_each_image_is_taught_once_a_pass_with_its_own_hints() -> None:
    items = _items(8)
    examples = hinted_examples(items, HINTS, seed=0, epoch=0)
    asked = {e.caption: e.exchanges[0][0] for e in examples}
    assert len(examples) == len(items) and set(asked) == set(CAPTIONS)
    assert asked[CAPTIONS[0]] == with_neighbours(CAPTION_PROMPT, HINTS[0])
    assert asked[CAPTIONS[3]] == CAPTION_PROMPT  # no neighbours: the plain request
    with pytest.raises(ValueError, match="hint lists"):
        hinted_examples(items, HINTS[:2], seed=0, epoch=0)


def test_only_the_description_maps_move_and_answers_keep_theirs(tmp_path: Path) -> None:
    engine = tiny_engine()
    before = {k: v.clone() for k, v in engine.bridge.state_dict().items()}
    losses = tune_descriptions(_items(engine.encoder.dim), HINTS, engine.lm, engine.bridge,
                               EngineConfig(), _config(), tmp_path / "run")
    assert len(losses) == 8 and losses[-1] < losses[0]
    after = engine.bridge.state_dict()
    moved = {name for name, value in before.items() if not torch.equal(after[name], value)}
    assert moved and all(name.startswith("describe_maps.") for name in moved)
    # The answer maps were made from the description maps as they were before tuning.
    for name, value in before.items():
        if name.startswith("describe_maps."):
            torch.testing.assert_close(after[name.replace("describe_", "answer_", 1)], value)
    assert engine.bridge.neighbour_hints == NeighbourHintSpec(neighbours=2, shown=2)
    engine.bridge.save(tmp_path / "bridge")
    loaded = load_bridge(tmp_path / "bridge", engine.bridge.spec)
    assert loaded.neighbour_hints == engine.bridge.neighbour_hints


def _hinted_engine() -> RSCapRet:
    """A tiny engine reading three train images' captions through a random projection."""
    engine = tiny_engine()
    store = CaptionDatastore(
        vectors=torch.nn.functional.normalize(torch.randn(3, 2), dim=-1),
        keys=("rsicd/a.jpg", "rsicd/b.jpg", "rsicd/c.jpg"),
        captions=(("a beach .",) * 5, ("a forest .",) * 5, ("a port .",) * 5),
        labels=(None, None, None), encoder_id="fake__projected")
    projection = torch.nn.Linear(engine.encoder.dim, 2, bias=False)
    engine.hints = DescriptionHints(NeighbourHints(store, k=2, shown=2),
                                    lambda x: projection(x).detach())
    return engine


def test_a_description_reads_the_neighbour_captions_as_trained() -> None:
    engine = _hinted_engine()
    image = np.ones(engine.encoder.dim, np.float32)
    asked = [image_turn(CAPTION_PROMPT, "img")]
    assert engine.hints is not None
    shown = engine.hints.captions(torch.as_tensor(image))
    assert shown  # two of the three train images' captions
    expected = [image_turn(with_neighbours(CAPTION_PROMPT, shown), "img")]
    assert engine._with_hints(asked, {"img": image}) == expected
    hinted = engine.generate(asked, {"img": image})
    engine.hints = None
    assert engine.generate(expected, {"img": image}).text == hinted.text


def test_questions_and_several_images_keep_their_prompt() -> None:
    engine = _hinted_engine()
    image = np.ones(engine.encoder.dim, np.float32)
    images = {"a": image, "b": image * 2}
    question = [image_turn(CAPTION_PROMPT, "a"), Turn("assistant", (TextPart("A beach."),)),
                Turn("user", (TextPart("Is there a boat?"),))]
    for dialogue in (question, [image_turn(SCENE_PROMPT, "a")],
                     [image_turn("Describe these images.", "a", "b")]):
        assert engine._with_hints(dialogue, images) == dialogue


def test_a_bridge_that_reads_neighbours_needs_their_datastore(tmp_path: Path) -> None:
    engine = tiny_engine()
    encoder = cast(ClipImageEncoder,
                   SimpleNamespace(projected_id="tiny__projected", project=lambda x: x))
    assert description_hints(BridgeConfig(), engine.bridge, encoder, None) is None  # not tuned
    engine.bridge.neighbour_hints = NeighbourHintSpec(neighbours=2, shown=1)
    with pytest.raises(ValueError, match="engine.bridge.datastore"):
        description_hints(BridgeConfig(), engine.bridge, encoder, None)
    store = CaptionDatastore(torch.eye(2), ("rsicd/a.jpg", "rsicd/b.jpg"), (("a",), ("b",)),
                             (None, None), "other__projected")
    save_datastore(store, tmp_path)
    config = BridgeConfig(datastore=str(tmp_path))
    with pytest.raises(ValueError, match="other__projected"):
        description_hints(config, engine.bridge, encoder, caption_datastore(config))
    save_datastore(dataclasses.replace(store, encoder_id="tiny__projected"), tmp_path)
    hints = description_hints(config, engine.bridge, encoder, caption_datastore(config))
    assert hints is not None and hints.captions(torch.tensor([0.0, 1.0])) == ("b",)


def test_consensus_weighs_each_candidate_by_its_agreement_with_every_neighbour_caption() -> None:
    engine = _hinted_engine()
    assert engine.hints is not None
    image = np.ones(engine.encoder.dim, np.float32)
    words = ["a beach .", "a forest .", "a port ."]
    candidates = [BeamCandidate(0.0, engine.lm.tokenizer.encode(w, add_special_tokens=False), True)
                  for w in words]
    bonus = engine._consensus(image, 2.0)(candidates)
    near = engine.hints.hints.neighbour_captions(
        engine.hints.project(torch.ones(1, engine.encoder.dim)))[0]
    references = [caption for captions in near for caption in captions]  # k 2: ten captions
    assert len(references) == 10
    expected = [2.0 * engine.hints.consensus.score(engine._text(c.ids), references)
                for c in candidates]
    assert bonus == pytest.approx(expected)
    far = next(w for w in words if (w,) * 5 not in near)  # the one image not among the 2
    assert bonus[words.index(far)] < max(bonus)


def test_a_description_is_reranked_by_consensus_only_where_the_bridge_reads_neighbours() -> None:
    engine = _hinted_engine()
    image = np.ones(engine.encoder.dim, np.float32)
    settings = engine._settings(GenerationOptions())
    for hinted, consensus, match, reranked in ((True, 1.0, 0.0, True), (False, 1.0, 0.0, False),
                                               (True, 0.0, 0.0, False), (False, 1.0, 1.0, True)):
        generation = dataclasses.replace(engine.config.generation, description_beams=3,
                                         description_match=match,
                                         description_consensus=consensus)
        engine.config = dataclasses.replace(engine.config, generation=generation)
        hints, engine.hints = engine.hints, engine.hints if hinted else None
        chosen = engine._description_settings(settings, image)
        engine.hints = hints
        assert (chosen.rerank is not None) == reranked
