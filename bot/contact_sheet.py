"""A contact sheet: search results in one PNG, each thumbnail captioned with label and score."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bot.replies import Hit

CAPTION_H = 18
LABEL_CHARS = 40


def contact_sheet(hits: Sequence[Hit], path: Path, thumb: int = 224, columns: int = 4) -> Path:
    """Write the hits as a grid to ``path`` (PNG) and return it."""
    columns = max(1, min(columns, len(hits)))
    rows = math.ceil(len(hits) / columns)
    sheet = Image.new("RGB", (columns * thumb, rows * (thumb + CAPTION_H)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for index, hit in enumerate(hits):
        x, y = (index % columns) * thumb, (index // columns) * (thumb + CAPTION_H)
        with Image.open(hit.path) as image:
            tile = image.convert("RGB")
            tile.thumbnail((thumb, thumb))
        sheet.paste(tile, (x + (thumb - tile.width) // 2, y))
        draw.text((x + 4, y + thumb + 3), sheet_label(index + 1, hit.label, hit.score),
                  fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def sheet_label(number: int, label: str, score: float | None = None,
                width: int = LABEL_CHARS) -> str:
    """A thumbnail's label in plain ASCII: the sheet's font has no glyph for dashes, arrows or
    most accents (they drew as boxes), so accents are dropped, dashes become "-" and other signs
    "?".
    """
    kept = "".join(_ascii(c) for c in unicodedata.normalize("NFKD", label))
    score_text = f" {score:.2f}" if score is not None else ""
    room = width - len(score_text) - len(f"{number}. ")
    text = kept if len(kept) <= room else kept[:room - 3] + "..."
    return f"{number}. {text}{score_text}"


def _ascii(char: str) -> str:
    if char.isascii():
        return char if char.isprintable() else " "
    if unicodedata.combining(char):
        return ""
    return "-" if unicodedata.category(char) == "Pd" else "?"
