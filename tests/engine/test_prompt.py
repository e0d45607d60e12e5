"""Prompt layout: which positions are image vectors and which are template tokens."""

from __future__ import annotations

import torch

from engine.model import RSCapRet
from engine.prompt import assemble_embeddings, layout_dialogue
from engine.types import ImagePart, TextPart, Turn


def _tokens(engine: RSCapRet, ids: tuple[int, ...]) -> list[str]:
    return list(engine.lm.tokenizer.convert_ids_to_tokens(list(ids)))


def test_single_image_layout_follows_chat_template(engine: RSCapRet) -> None:
    turn = Turn("user", (ImagePart("img"), TextPart("Describe this image.")))
    layout = layout_dialogue(engine.lm.tokenizer, [turn], 4, "Be brief.")
    tokens = _tokens(engine, layout.ids)
    start = layout.image_slots[0][0]
    # system turn, then the user turn opens, then the 4 image slots, then the text.
    assert tokens[:3] == ["<|im_start|>", "system", "Ċ"]
    assert tokens[start - 3:start] == ["<|im_start|>", "user", "Ċ"]
    assert layout.image_slots == ((start, "img"),) and layout.prefix_tokens == 4
    text = engine.lm.tokenizer.decode(list(layout.ids[start + 4:]))
    assert isinstance(text, str) and text.startswith(" Describe this")
    assert tokens[-4:] == ["<|im_start|>", "ass", "istant", "Ċ"]


def test_interleaved_images_keep_their_order_and_turns(engine: RSCapRet) -> None:
    turns = [
        Turn("user", (ImagePart("a"), TextPart("and"), ImagePart("b"))),
        Turn("assistant", (TextPart("Two scenes."),)),
        Turn("user", (TextPart("Compare"), ImagePart("c"))),
    ]
    layout = layout_dialogue(engine.lm.tokenizer, turns, 1, None)
    assert [sha for _, sha in layout.image_slots] == ["a", "b", "c"]
    starts = [s for s, _ in layout.image_slots]
    text = engine.lm.tokenizer.decode(list(layout.ids[starts[1] + 1:starts[2]]))
    assert "Two scenes." in text and "Compare" in text
    assert layout.prefix_tokens == 1  # one position per image


def test_no_system_prompt_keeps_template_default(engine: RSCapRet) -> None:
    layout = layout_dialogue(engine.lm.tokenizer, [Turn("user", (TextPart("hi"),))], 4, None)
    assert "SmolLM" in engine.lm.tokenizer.decode(list(layout.ids))


def test_assembly_splices_prefix_vectors_at_slots(engine: RSCapRet) -> None:
    turn = Turn("user", (TextPart("look"), ImagePart("x")))
    layout = layout_dialogue(engine.lm.tokenizer, [turn], 4, None)
    tokens = torch.zeros(len(layout), 8)
    prefix = torch.arange(32, dtype=torch.float32).view(4, 8) + 1
    out = assemble_embeddings(layout, tokens, {"x": prefix})
    start = layout.image_slots[0][0]
    assert out.shape == tokens.shape
    assert torch.equal(out[start:start + 4], prefix)
    assert out[:start].abs().sum() == 0 and out[start + 4:].abs().sum() == 0
