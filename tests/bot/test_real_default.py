"""The shipped default, end to end through the conversation service: the real embedded weights
and trained bridge, a fresh SQLite store, the seed gallery indexed on first start.

An image goes in and a description comes out; a text request and "more like this" bring back
gallery images; a follow-up question sees the image from the earlier turn.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import build_service
from bot.cli.caption import run as caption_command
from bot.config import load_config
from bot.service.conversation import ConversationService
from bot.service.user_ref import UserRef
from engine.training.scene_match import names_scene
from tests.bot.conftest import TEST_BOT
from tests.paths import RSICD_IMAGES, SEED_GALLERY

pytestmark = pytest.mark.real_weights

USER = UserRef("test", "e2e")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ConversationService]:
    config = load_config()
    store = dataclasses.replace(config.store, data_dir=str(tmp_path))
    service = build_service(dataclasses.replace(config, store=store, bot=TEST_BOT))
    yield service
    service.close()


async def test_image_in_description_out_then_follow_up(service: ConversationService) -> None:
    reply = await service.ask(USER, "", [(RSICD_IMAGES / "00001.jpg").read_bytes()])
    assert len(reply.text.split()) >= 3 and "[RET]" not in reply.text
    follow_up = await service.ask(USER, "What kind of scene is this?")
    assert follow_up.text.strip() and follow_up.text != reply.text
    history = (await service.history(USER)).splitlines()
    assert len(history) == 4 and history[0] == "You: Describe this image. [image]", history


async def test_follow_ups_about_the_scene_are_answered_by_the_answer_maps(
        service: ConversationService) -> None:
    # A val airport the description maps alone answered "No." to "Is this an airport?".
    await service.ask(USER, "", [(RSICD_IMAGES / "airport_40.jpg").read_bytes()])
    assert (await service.ask(USER, "Is this an airport?")).text.startswith("Yes")
    assert names_scene((await service.ask(USER, "What kind of place is this?")).text, "airport")


async def test_text_search_returns_matching_gallery_images(service: ConversationService) -> None:
    reply = await service.search(USER, "an airport with runways and planes")
    scores = [hit.score for hit in reply.hits]
    assert len(reply.hits) == TEST_BOT.search_results and scores == sorted(scores, reverse=True)
    assert all(hit.path.is_file() for hit in reply.hits)
    assert "airport" in [hit.label for hit in reply.hits], [h.label for h in reply.hits]


async def test_more_like_this_finds_the_same_scene_first(service: ConversationService) -> None:
    reply = await service.similar(USER, (SEED_GALLERY / "airport_349.jpg").read_bytes())
    best = reply.hits[0]
    # Its seed copy: cosine 1 less that image's hubness (a tenth or so), far above the rest.
    scores = [(h.label, h.score) for h in reply.hits]
    assert best.label == "airport" and best.score > 0.8, scores
    assert all(best.score - h.score > 0.3 for h in reply.hits[1:]), scores


async def test_first_description_is_what_capret_caption_writes(
    service: ConversationService, capsys: pytest.CaptureFixture[str]
) -> None:
    path = RSICD_IMAGES / "00010.jpg"
    reply = await service.ask(USER, "", [path.read_bytes()])
    assert caption_command(argparse.Namespace(config=None, images=[str(path)],
                                              max_new_tokens=None)) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == f"{path}\t{reply.text}"


@pytest.mark.parametrize("text", ["is it going to rain tomorrow?", "what is this place called?",
                                  "where is this?", "hi", "thanks!"])
async def test_honest_replies_never_search_nor_invent(service: ConversationService,
                                                      text: str) -> None:
    await service.ask(USER, "", [(RSICD_IMAGES / "00001.jpg").read_bytes()])
    reply = await service.ask(USER, text)
    assert not reply.hits
    assert reply.text.startswith("I can't tell") or reply.text.startswith("I describe")
    assert not any(w in reply.text.lower() for w in ("sunny", "cloudy", "°", "degrees"))
