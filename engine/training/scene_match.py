"""Does an answer name the right scene class? The one matcher `capret eval` reports.

An answer is right when it names the scene class (case-, space- and singular/plural-
insensitive: "storage tank" counts for `storagetanks`, "Baseball Fields" for `baseballfield`)
and names no other class. Words match whole ("park" is not found in "parking"). The strict
matcher of earlier reports (`names_scene_strict`) is kept beside it for comparison.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from engine.tokens import humanize_label

# The 31 RSICD scene classes (the release's `label` field).
RSICD_CLASSES = (
    "airport", "bareland", "baseballfield", "beach", "bridge", "center", "church", "commercial",
    "denseresidential", "desert", "farmland", "forest", "industrial", "meadow",
    "mediumresidential", "mountain", "park", "parking", "playfields", "playground", "pond",
    "port", "railwaystation", "resort", "river", "school", "sparseresidential", "square",
    "stadium", "storagetanks", "viaduct",
)


def names_scene(answer: str, label: str, classes: Sequence[str] = RSICD_CLASSES) -> bool:
    """The answer names ``label`` and no other class of ``classes``."""
    text = _normal(answer)
    if not _pattern(label).search(text):
        return False
    others = [c for c in classes if c != label and _pattern(c).search(text)]
    # A class whose name is inside the label's own ("residential" in "dense residential")
    # is not another class named.
    return not [c for c in others if not _pattern(c).search(_normal(humanize_label(label)))]


def names_scene_strict(answer: str, label: str) -> bool:
    """Earlier matcher: the exact label in words ('dense residential') or run together."""
    text = " ".join(answer.lower().replace("-", " ").split())
    return humanize_label(label) in text or label in text.replace(" ", "")


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


@cache
def _pattern(label: str) -> re.Pattern[str]:
    """Whole words of the class, each optionally plural, spaces between them optional."""
    words = [_singular(w) for w in humanize_label(label).lower().split()]
    body = r"\s?".join(re.escape(w) + r"(?:s|es)?" for w in words)
    return re.compile(rf"\b{body}\b")


def _singular(word: str) -> str:
    if word.endswith("ches") or word.endswith("shes"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word
