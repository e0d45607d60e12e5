"""The square's symmetries in one place: eight distinct views, quarter turns among them."""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine.dihedral import DIHEDRAL, dihedral_view, quarter_turned


def test_eight_distinct_views_and_quarter_turns_among_them() -> None:
    image = Image.fromarray(np.arange(9, dtype=np.uint8).reshape(3, 3))
    views = [np.asarray(dihedral_view(image, v)).tobytes() for v in range(len(DIHEDRAL))]
    assert len(set(views)) == 8 and views[0] == np.asarray(image).tobytes()
    turns = [np.asarray(quarter_turned(image, t)).tobytes() for t in range(5)]
    assert turns[4] == turns[0] and set(turns[:4]) <= set(views)
    np.testing.assert_array_equal(np.asarray(quarter_turned(image, 1)), np.rot90(np.asarray(image)))
