"""A contact sheet: search results in one PNG, each thumbnail captioned with label and score."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from bot.replies import Hit, hit_caption

CAPTION_H = 18


def contact_sheet(hits: Sequence[Hit], path: Path, thumb: int = 224, columns: int = 4) -> Path:
    """Write the hits as a grid to ``path`` (PNG) and return it."""
    columns = max(1, min(columns, len(hits)))
    rows = math.ceil(len(hits) / columns)
    sheet = Image.new("RGB", (columns * thumb, rows * (thumb + CAPTION_H)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, hit in enumerate(hits):
        x, y = (index % columns) * thumb, (index // columns) * (thumb + CAPTION_H)
        with Image.open(hit.path) as image:
            tile = image.convert("RGB")
            tile.thumbnail((thumb, thumb))
        sheet.paste(tile, (x + (thumb - tile.width) // 2, y))
        draw.text((x + 4, y + thumb + 3), f"{index + 1}. {hit_caption(hit)}"[:40], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path
