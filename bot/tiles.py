"""Large scenes by tiles: a grid cut from the full-resolution scene, the tiles that stand out,
and a contact sheet of the grid with each tile's caption (``/tiles``).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bot.contact_sheet import sheet_label

ROWS = {2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
COLUMNS = {2: ("left", "right"), 3: ("left", "centre", "right")}
SHEET_TILE = 256
CAPTION_LINES = 4


@dataclass(frozen=True)
class Tile:
    """One cell of the grid, at most ``tile_side`` pixels on a side."""

    row: int
    col: int
    grid: int
    image: Image.Image

    @property
    def name(self) -> str:
        """Where the tile is, in words ("top left", "middle centre")."""
        if self.grid in ROWS:
            name = f"{ROWS[self.grid][self.row]} {COLUMNS[self.grid][self.col]}"
            return "centre" if name == "middle centre" else name
        return f"row {self.row + 1}, column {self.col + 1}"


@dataclass(frozen=True)
class TiledScene:
    """A large scene's tiles and their captions, for /tiles and /similar."""

    sha256: str
    tiles: tuple[Tile, ...]
    captions: tuple[str, ...]
    # Encoder embeddings of the tiles, (N, D_img): /similar searches with each.
    vectors: np.ndarray


def is_large(width: int, height: int, model_side: int, factor: float) -> bool:
    """Larger than the model's input by ``factor`` (on the longer side)."""
    return max(width, height) > model_side * factor


def cut_tiles(image: Image.Image, grid: int, tile_side: int) -> tuple[Tile, ...]:
    """A ``grid`` × ``grid`` cut of the full image, each tile reduced to ``tile_side``."""
    width, height = image.size
    tiles = []
    for row in range(grid):
        for col in range(grid):
            box = (col * width // grid, row * height // grid,
                   (col + 1) * width // grid, (row + 1) * height // grid)
            tile = image.crop(box)
            tile.thumbnail((tile_side, tile_side), Image.Resampling.LANCZOS)
            tiles.append(Tile(row, col, grid, tile))
    return tuple(tiles)


def notable(tile_vectors: np.ndarray, scene_vector: np.ndarray, count: int) -> list[int]:
    """Indices of the ``count`` tiles least like the whole scene (cosine), most distinct
    first: what the overview is most likely to have left out.
    """
    tiles = tile_vectors / (np.linalg.norm(tile_vectors, axis=1, keepdims=True) + 1e-8)
    scene = scene_vector / (np.linalg.norm(scene_vector) + 1e-8)
    similarity = tiles @ scene  # (N,)
    return [int(i) for i in np.argsort(similarity, kind="stable")[:count]]


def tile_lines(scene: TiledScene, picked: Sequence[int]) -> str:
    """The reply's lines for the picked tiles."""
    lines = [f"• {scene.tiles[i].name}: {scene.captions[i]}" for i in picked]
    return "Parts of the scene that stand out:\n" + "\n".join(lines) + \
        "\n(/tiles shows every tile with its caption.)"


def tile_sheet(scene: TiledScene) -> bytes:
    """The grid as one PNG, each tile over its position and caption."""
    grid = scene.tiles[0].grid
    font = ImageFont.load_default(size=12)
    caption_h = 14 * (CAPTION_LINES + 1) + 4
    sheet = Image.new("RGB", (grid * SHEET_TILE, grid * (SHEET_TILE + caption_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (tile, caption) in enumerate(zip(scene.tiles, scene.captions, strict=True)):
        x, y = tile.col * SHEET_TILE, tile.row * (SHEET_TILE + caption_h)
        thumb = tile.image.copy()
        thumb.thumbnail((SHEET_TILE, SHEET_TILE))
        sheet.paste(thumb, (x + (SHEET_TILE - thumb.width) // 2, y))
        label = sheet_label(index + 1, f"{tile.name}: {caption}", width=40 * CAPTION_LINES)
        text = "\n".join(textwrap.wrap(label, 40)[:CAPTION_LINES + 1])
        draw.multiline_text((x + 4, y + SHEET_TILE + 2), text, fill="black", font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
