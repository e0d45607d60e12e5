"""The symmetries of the square as PIL transposes: views of an overhead image that show the
same scene (north need not be up). The one home of the rotations and flips that training
augmentation, the cached feature views and the encoder's trunk cache use.
"""

from __future__ import annotations

from PIL import Image

_T = Image.Transpose
# Quarter turns counter-clockwise: 0, 90, 180 and 270 degrees.
QUARTER_TURNS: tuple[Image.Transpose | None, ...] = (None, _T.ROTATE_90, _T.ROTATE_180,
                                                     _T.ROTATE_270)
# All eight symmetries; view 0 is the image as it is. The order names the views cached on disk
# (engine/training/trunk_cache.py), so it never changes.
DIHEDRAL: tuple[Image.Transpose | None, ...] = (
    None, _T.FLIP_LEFT_RIGHT, _T.ROTATE_90, _T.FLIP_TOP_BOTTOM, _T.ROTATE_270, _T.ROTATE_180,
    _T.TRANSPOSE, _T.TRANSVERSE)


def quarter_turned(image: Image.Image, turns: int) -> Image.Image:
    """``image`` turned ``turns`` quarter turns counter-clockwise (modulo 4)."""
    return _transposed(image, QUARTER_TURNS[turns % 4])


def dihedral_view(image: Image.Image, view: int) -> Image.Image:
    """View ``view`` (0-7) of ``image``: one of the square's eight symmetries."""
    return _transposed(image, DIHEDRAL[view])


def _transposed(image: Image.Image, op: Image.Transpose | None) -> Image.Image:
    return image if op is None else image.transpose(op)
