"""One question about the conversation's images in, its answer out: the dispatch from what
``engine/intent.py`` read to what ``engine/answers.py`` can tell. The chat and ``capret eval``
both answer through ``answer_question``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.answers import (
    CANNOT_ANSWER,
    Answers,
    Seen,
    answer_presence,
    hedged_count,
    ordinal,
    same_kind_text,
)
from engine.intent import Intent
from engine.prompt import image_turn
from engine.taught import scene_classes, taught_object, taught_question
from engine.types import Turn

# Kinds answered over all the images at once.
OVER_ALL = frozenset({"which", "compare", "same_kind"})


def answer_question(answers: Answers, intent: Intent, dialogue: Sequence[Turn],
                    seen: Sequence[Seen], session: str | None = None) -> str:
    """The reply to ``intent`` about ``seen`` (the conversation's images in order, or the
    results just shown); ``dialogue`` ends with the user's turn, for the taught kinds.
    """
    if not seen:
        return ("Send me an image first, and then ask about it, or ask for images by words "
                "(\"show me farmland near a river\").")
    if intent.kind in OVER_ALL:
        return _over_all(answers, intent, seen)
    target = _pick(seen, intent.target)
    if target is None:
        which = ordinal(intent.target) if intent.target and intent.target > 0 else "such"
        return f"There is no {which} image here: I have {len(seen)}."
    if intent.target is not None and len(seen) > 1:
        dialogue = [image_turn("", target.key)]  # ask about that image alone
    embeddings = {s.key: s.embedding for s in seen}
    if intent.kind in ("describe", "detail", "region", "where"):
        return _looked_at(answers, intent, target)
    return _asked(answers, intent, dialogue, embeddings, target, session)


def _looked_at(answers: Answers, intent: Intent, seen: Seen) -> str:
    """Answers made by looking again: a description, of the whole, its parts or one part."""
    if intent.kind == "describe":
        return answers.describe(seen)
    if intent.kind == "detail":
        return answers.detail(seen)
    if intent.kind == "region" and intent.region is not None:
        return answers.region(seen, intent.region)
    return answers.where(intent.subject, seen)


def _asked(answers: Answers, intent: Intent, dialogue: Sequence[Turn],
           embeddings: dict[str, np.ndarray], seen: Seen, session: str | None) -> str:
    """The taught kinds (asked in the taught words) and presence of anything."""
    if intent.kind == "scene_is" and not scene_classes(intent.subject):
        # "is this a busy road?" asks about a thing, not a kind of place
        intent = Intent("presence", intent.subject, intent.region, intent.target)
    if intent.kind == "presence":
        return answer_presence(answers, intent, dialogue, embeddings, seen, session)
    if intent.kind in ("count", "colour") and taught_object(intent.subject) is None \
            and answers.judges_by_search and not answers.present(intent.subject, seen):
        return f"I don't see any {intent.subject} here."
    if intent.kind in ("count", "colour", "scene", "scene_is"):
        reply = answers.ask_taught(taught_question(intent), dialogue, seen, embeddings, session)
        return hedged_count(reply) if intent.kind == "count" else reply
    return CANNOT_ANSWER


def _over_all(answers: Answers, intent: Intent, seen: Sequence[Seen]) -> str:
    if len(seen) < 2:
        return ("I have only one image in our conversation now (earlier ones leave it after "
                "a few messages): send the other again, and I will compare them.")
    if intent.kind == "which":
        best = answers.which(intent.subject, seen, intent.fewer)
        how = "least" if intent.fewer else "best"
        what = f'"{intent.subject}"' if intent.subject else "what you describe"
        return f"The {ordinal(best)} one: of the {len(seen)} images it matches {what} {how}."
    if intent.kind == "same_kind":
        scenes = answers.scenes(seen)
        same = len(set(scenes)) == 1
        return f"{'Yes' if same else 'No'}. {same_kind_text(scenes)}"
    return answers.compare(seen)


def _pick(seen: Sequence[Seen], target: int | None) -> Seen | None:
    if target is None:
        return seen[-1]
    if -len(seen) <= target < len(seen):
        return seen[target]
    return None
