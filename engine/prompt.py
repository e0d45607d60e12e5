"""Dialogue -> one interleaved sequence: template tokens with each image's k vectors spliced in.

The LM's chat template lays out the turns (a plain "User:/Assistant:" layout when the tokenizer
has none); every image part becomes a placeholder in the templated text, and each placeholder
becomes k slots filled with the bridge's prefix vectors for that image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from engine.tokens import IMAGE_PLACEHOLDER, asks_to_describe
from engine.types import ImagePart, TextPart, Turn


@dataclass(frozen=True)
class PromptLayout:
    """Token ids with image slots; ``ids`` holds a filler id at slot positions."""

    ids: tuple[int, ...]
    # (first position, image sha256): each slot spans ``prefix_tokens`` positions.
    image_slots: tuple[tuple[int, str], ...]
    prefix_tokens: int

    def __len__(self) -> int:
        return len(self.ids)

    def extended(self, ids: Sequence[int]) -> PromptLayout:
        """The same layout followed by more plain tokens."""
        return PromptLayout(self.ids + tuple(ids), self.image_slots, self.prefix_tokens)


def layout_dialogue(tokenizer: PreTrainedTokenizerBase, turns: Sequence[Turn], prefix_tokens: int,
                    system_prompt: str | None, add_generation_prompt: bool = True) -> PromptLayout:
    """Lay out ``turns`` with the chat template; images become ``prefix_tokens`` slots each."""
    text = render_text(tokenizer, turns, system_prompt, add_generation_prompt)
    segments = text.split(IMAGE_PLACEHOLDER)
    images = [p.sha256 for t in turns for p in t.parts if isinstance(p, ImagePart)]
    ids: list[int] = []
    slots: list[tuple[int, str]] = []
    for i, segment in enumerate(segments):
        ids.extend(_encode(tokenizer, segment, first=i == 0))
        if i < len(images):
            slots.append((len(ids), images[i]))
            ids.extend([_filler_id(tokenizer)] * prefix_tokens)
    return PromptLayout(tuple(ids), tuple(slots), prefix_tokens)


def image_turn(prompt: str, *shas: str) -> Turn:
    """The one way to build a user turn with images: the text first, then each image.

    Training, `capret caption`, `capret eval` and the chat all call this, so the model sees
    at inference the layout it was trained on (text first also lets the request share the
    KV-cached prefix in training).
    """
    return Turn("user", (TextPart(prompt), *(ImagePart(sha) for sha in shas)))


def answering(turns: Sequence[Turn]) -> bool:
    """The dialogue's last user turn asks something other than a description (so the bridge's
    answer maps, where it has them, stand for its images).
    """
    asked = next((t for t in reversed(turns) if t.role == "user"), None)
    if asked is None:
        return False
    text = " ".join(p.text for p in asked.parts if isinstance(p, TextPart))
    return not asks_to_describe(text)


def render_text(tokenizer: PreTrainedTokenizerBase, turns: Sequence[Turn],
                system_prompt: str | None, add_generation_prompt: bool) -> str:
    """The templated dialogue as text, with IMAGE_PLACEHOLDER where images go."""
    messages = [{"role": t.role, "content": _content(t)} for t in turns]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt))
    lines = [f"{m['role'].capitalize()}: {m['content']}\n" for m in messages]
    return "".join(lines) + ("Assistant:" if add_generation_prompt else "")


def assemble_embeddings(layout: PromptLayout, token_embeds: torch.Tensor,
                        prefixes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Replace each slot of ``token_embeds`` (T, D) with its image's prefix (k, D)."""
    pieces = []
    cursor = 0
    for start, sha in layout.image_slots:
        if sha not in prefixes:
            raise KeyError(f"no embedding given for image {sha[:12]}")
        pieces.append(token_embeds[cursor:start])
        pieces.append(prefixes[sha].to(token_embeds.dtype))
        cursor = start + layout.prefix_tokens
    pieces.append(token_embeds[cursor:])
    return torch.cat(pieces, dim=0)  # (T, D)


def _content(turn: Turn) -> str:
    out = []
    for part in turn.parts:
        out.append(part.text if isinstance(part, TextPart) else IMAGE_PLACEHOLDER)
    return " ".join(p for p in out if p) if len(out) > 1 else "".join(out)


def _encode(tokenizer: PreTrainedTokenizerBase, text: str, first: bool) -> list[int]:
    # A BOS only at the very start, and only if the template did not write one itself.
    bos = tokenizer.bos_token
    add_special = first and not (bos and text.startswith(bos))
    if not text:
        return list(tokenizer("", add_special_tokens=add_special).input_ids) if first else []
    return list(tokenizer(text, add_special_tokens=add_special).input_ids)


def _filler_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)
