"""The scene matcher `capret eval` reports: names the class, and no other class."""

from __future__ import annotations

import pytest

from engine.training.scene_match import names_scene, names_scene_strict


@pytest.mark.parametrize(("answer", "label"), [
    ("This is a storage tanks scene.", "storagetanks"),
    ("This scene is a storage tank with a white material.", "storagetanks"),
    ("These are Baseball Fields.", "baseballfield"),
    ("This is a bareland scene.", "bareland"),
    ("This is a bare land scene.", "bareland"),
    ("This is a dense residential area.", "denseresidential"),
    ("two churches", "church"),
    ("This is a railway station scene.", "railwaystation"),
])
def test_names_the_class_in_any_spelling(answer: str, label: str) -> None:
    assert names_scene(answer, label)


@pytest.mark.parametrize(("answer", "label"), [
    ("This is a parking lot.", "park"),  # whole words: "park" is not in "parking"
    ("This is a playground.", "playfields"),  # a different RSICD class
    ("This is a beach next to a river.", "beach"),  # names another class too
    ("This is a medium residential area.", "denseresidential"),
    ("A green field.", "meadow"),
])
def test_wrong_or_ambiguous_answers_do_not_count(answer: str, label: str) -> None:
    assert not names_scene(answer, label)


def test_strict_matcher_needs_the_label_as_taught() -> None:
    assert names_scene_strict("This is a storage tanks scene.", "storagetanks")
    assert not names_scene_strict("a storage tank", "storagetanks")
    assert names_scene("a storage tank", "storagetanks")
