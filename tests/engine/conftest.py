"""Engine fixtures: tiny random models and a real RSICD image."""

from __future__ import annotations

import pytest
from PIL import Image

from engine.model import RSCapRet
from tests.engine.tiny import tiny_engine
from tests.paths import RSICD


@pytest.fixture(scope="module")
def engine() -> RSCapRet:
    return tiny_engine()


@pytest.fixture()
def image() -> Image.Image:
    return Image.open(RSICD / "images" / "00001.jpg").convert("RGB")
