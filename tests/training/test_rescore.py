"""Re-scoring a saved evaluation on a subset of its images, without the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.training.data import CaptionedImage
from engine.training.evaluate import rescore

REPORT = {
    "captions": {"a.jpg": "many planes are near a terminal", "b.jpg": "a river in a forest"},
    "scene_answers": {"a.jpg": "This is an airport scene.", "b.jpg": "This is a beach scene."},
    "followups": [
        {"image": "a.jpg", "kind": "presence", "right": True},
        {"image": "a.jpg", "kind": "count", "right": False},
        {"image": "b.jpg", "kind": "presence", "right": False},
    ],
}
A = CaptionedImage(Path("a.jpg"), ("many planes are near a terminal",) * 5, "val", "airport")
B = CaptionedImage(Path("b.jpg"), ("a river runs through a forest",) * 5, "val", "river")


def test_only_the_given_images_are_scored() -> None:
    """One test: each call starts Java twice (the PTB tokenizer)."""
    only_a = rescore(REPORT, [A], meteor=False)
    assert only_a["CIDEr"] == pytest.approx(0.0)  # one image: CIDEr's idf is 0, as usual
    assert only_a["BLEU-1"] == pytest.approx(1.0)
    assert only_a["scene_accuracy"] == 100.0
    assert only_a["followup_presence_%"] == 100.0
    assert only_a["followup_count_%"] == 0.0
    assert "mR" not in only_a  # retrieval's pool is the whole split: not re-scored
    both = rescore(REPORT, [A, B], meteor=False)
    assert both["scene_accuracy"] == 50.0
    assert both["followup_presence_%"] == 50.0
    assert both["followup_yes_no_%"] == 50.0
    assert both["distinct_captions_%"] == 100.0
