"""Parts of an image people name ("on the left", "top right", "in the middle"), each a box.

A part is answered from a square crop placed on it (``crop``): the encoder was trained on
square images, and a square of 0.6 of the side keeps the scale near the whole image's while
covering most of the part. Boxes are fractions of the width and height: (left, top, right,
bottom).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image

SIDE = 0.6  # a part's crop, as a share of the image's width and height
_FAR = 1.0 - SIDE
_MID = (1.0 - SIDE) / 2


@dataclass(frozen=True)
class Region:
    """A named part of an image and the box its crop takes."""

    name: str  # how a reply names it: "the top left", "the middle"
    box: tuple[float, float, float, float]

    def crop(self, image: Image.Image) -> Image.Image:
        """The part of ``image`` this region names, as a square crop (RGB)."""
        w, h = image.size
        left, top, right, bottom = self.box
        return image.convert("RGB").crop(
            (round(left * w), round(top * h), round(right * w), round(bottom * h)))


def _box(x: float, y: float) -> tuple[float, float, float, float]:
    return (x, y, x + SIDE, y + SIDE)


REGIONS: dict[str, Region] = {
    "top left": Region("the top left", _box(0, 0)),
    "top right": Region("the top right", _box(_FAR, 0)),
    "bottom left": Region("the bottom left", _box(0, _FAR)),
    "bottom right": Region("the bottom right", _box(_FAR, _FAR)),
    "left": Region("the left", _box(0, _MID)),
    "right": Region("the right", _box(_FAR, _MID)),
    "top": Region("the top", _box(_MID, 0)),
    "bottom": Region("the bottom", _box(_MID, _FAR)),
    "middle": Region("the middle", _box(_MID, _MID)),
}
# The whole image as a region (a detailed description decodes it with its parts).
WHOLE = Region("the whole", (0.0, 0.0, 1.0, 1.0))
# The parts a detailed description walks through, and where "where is the X?" looks.
QUADRANTS = tuple(REGIONS[k] for k in ("top left", "top right", "bottom left", "bottom right"))
SEARCHED = (*QUADRANTS, REGIONS["middle"])

_VERTICAL = r"(top|upper|bottom|lower|north(?:ern)?|south(?:ern)?)"
_HORIZONTAL = r"(left|right|west(?:ern)?|east(?:ern)?)"
_WORDS = {"upper": "top", "lower": "bottom", "north": "top", "northern": "top",
          "south": "bottom", "southern": "bottom", "west": "left", "western": "left",
          "east": "right", "eastern": "right", "center": "middle", "centre": "middle",
          "central": "middle"}
_CORNER = re.compile(rf"\b{_VERTICAL}[\s-]*(?:hand\s+)?{_HORIZONTAL}\b")
_CORNER_SWAPPED = re.compile(rf"\b{_HORIZONTAL}[\s-]*{_VERTICAL}\b")
_SIDE = re.compile(
    rf"\b(?:on|in|at|to|of|along|near|towards?)\s+(?:the\s+)?(?:far\s+|very\s+)?"
    rf"({_VERTICAL[1:-1]}|{_HORIZONTAL[1:-1]})"
    r"(?:\s*(?:-?\s*hand)?\s*(?:side|part|half|edge|area|corner|portion|section|end))?\b")
_SIDE_NOUN = re.compile(rf"\b({_VERTICAL[1:-1]}|{_HORIZONTAL[1:-1]})\s*(?:-?\s*hand\s+)?"
                        r"(?:side|part|half|edge|corner|portion|section)\b")
# A side named alone, as a follow-up: "and the bottom?", "what about the left?"
_SIDE_ALONE = re.compile(rf"^(?:and\s+)?(?:(?:what|how)\s+about\s+)?the\s+({_VERTICAL[1:-1]}|"
                         rf"{_HORIZONTAL[1:-1]})\s*[?.!]*$")
_MIDDLE = re.compile(r"\b(middle|center|centre|central)\b")


def find_region(text: str) -> Region | None:
    """The part of the image ``text`` names, if it names one."""
    lowered = text.lower()
    for pattern, order in ((_CORNER, (1, 2)), (_CORNER_SWAPPED, (2, 1))):
        if match := pattern.search(lowered):
            vertical, horizontal = (_norm(match.group(i)) for i in order)
            return REGIONS[f"{vertical} {horizontal}"]
    for pattern in (_SIDE, _SIDE_NOUN, _SIDE_ALONE):
        if match := pattern.search(lowered):
            return REGIONS[_norm(match.group(1))]
    if _MIDDLE.search(lowered):
        return REGIONS["middle"]
    return None


def _norm(word: str) -> str:
    return _WORDS.get(word, word)
