"""How the service keeps and shows turns: the stored assistant turn (naming the images shown),
a history line, and the engine's session key for a conversation.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.replies import Hit
from engine.types import ImagePart, TextPart, Turn


def session_key(uid: int) -> str:
    """The engine's key for a user's conversation (its cross-turn KV cache)."""
    return f"user-{uid}"


def reply_turn(text: str, hits: Sequence[Hit]) -> Turn:
    """The assistant turn to store: the reply, then which gallery images it showed."""
    found = "; ".join(f"{hit.label or 'your image'} ({hit.score:.2f})" for hit in hits)
    return Turn("assistant", (TextPart(f"{text}\n[shown: {found}]" if hits else text),))


def render_turn(turn: Turn) -> str:
    """One line of ``/history``: who said it, and the text with images as ``[image]``."""
    who = "You" if turn.role == "user" else "CapRet"
    body = " ".join("[image]" if isinstance(p, ImagePart) else p.text for p in turn.parts)
    return f"{who}: {body}"
