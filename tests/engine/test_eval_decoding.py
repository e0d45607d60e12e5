"""`capret eval` says what the chat says: its replies equal the chat's, one by one."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT, SCENE_PROMPT
from engine.training.config import DatasetSource
from engine.training.data import CaptionedImage, evaluation_records
from engine.training.evaluate import replies
from engine.types import GenerationOptions, TextPart, Turn
from tests.engine.tiny import tiny_engine
from tests.paths import RSICD, RSICD_IMAGES

IMAGES = 45  # about 300 prompts: a description, a scene answer and follow-ups per image


def _engine() -> RSCapRet:
    """The tiny model, describing as the shipped default does: beams re-ranked by the search
    match (every other reply greedy). Untied: a tied tiny head repeats the prompt's last token.
    """
    engine = tiny_engine(seed=3, tied=False)
    generation = dataclasses.replace(engine.config.generation, description_beams=3,
                                     description_match=0.5)
    engine.config = dataclasses.replace(engine.config, generation=generation)
    return engine


def _records() -> list[CaptionedImage]:
    source = DatasetSource("rsicd", str(RSICD / "dataset_rsicd.json"), str(RSICD_IMAGES))
    return evaluation_records((source,), "val", sample=IMAGES, seed=1)


def _say(engine: RSCapRet, dialogue: list[Turn], features: dict[str, np.ndarray],
         max_new_tokens: int, session: str) -> str:
    """One chat turn as the conversation service asks for it (an image turn never searches)."""
    options = GenerationOptions(max_new_tokens=max_new_tokens, allow_retrieval=False,
                                session=session)
    return engine.generate(dialogue, features, options).text


def test_eval_replies_equal_the_chats_one_by_one() -> None:
    engine = _engine()
    records = _records()
    report = replies(engine, records)
    assert engine.backend.batcher.largest_batch > 3  # type: ignore[attr-defined]  # steps shared
    said_by_eval = [*report.captions.values(), *report.scene_answers.values(),
                    *(f["answer"] for f in report.followups)]
    assert len(said_by_eval) >= 250 and all(said_by_eval)
    features = {r.path.name: engine.embed_images([Image.open(r.path).convert("RGB")])[0]
                for r in records}
    for r in records:
        name = r.path.name
        description = image_turn(CAPTION_PROMPT, name)
        said = _say(engine, [description], features, 40, f"chat-{name}")
        assert report.captions[name] == said, name
        if r.label:
            scene = _say(engine, [image_turn(SCENE_PROMPT, name)], features, 12, f"scene-{name}")
            assert report.scene_answers[name] == scene, name
        for asked in (f for f in report.followups if f["image"] == name):
            dialogue = [description, Turn("assistant", (TextPart(said),)),
                        Turn("user", (TextPart(asked["question"]),))]
            answer = _say(engine, dialogue, features, 12, f"chat-{name}")  # the same chat
            assert asked["answer"] == answer, (name, asked["question"])
