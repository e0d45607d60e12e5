"""Consensus with the neighbours' captions: CIDEr-D as the scorer computes it, document
frequencies from a corpus of captioned images.
"""

from __future__ import annotations

import pytest
from pycocoevalcap.cider.cider_scorer import CiderScorer

from engine.consensus import CaptionConsensus, words

IMAGES = [
    ["many planes are parked near a terminal .", "several planes stand at an airport ."],
    ["a river flows past green fields .", "a winding river runs through farmland ."],
    ["storage tanks stand beside a road .", "some white storage tanks are near a road ."],
    ["a stadium is surrounded by buildings .", "a round stadium sits among many buildings ."],
]


def test_it_scores_as_the_evaluation_scorer_does_with_the_same_frequencies() -> None:
    references = [[" ".join(words(c)) for c in captions] for captions in IMAGES]
    candidates = ["many planes are parked at an airport", "a river runs past fields",
                  "a stadium near a road", "green fields"]
    scorer = CiderScorer(n=4, sigma=6.0)
    for candidate, refs in zip(candidates, references, strict=True):
        scorer += (candidate, refs)
    _, expected = scorer.compute_score()
    consensus = CaptionConsensus(IMAGES)
    got = [consensus.score(c, refs) for c, refs in zip(candidates, IMAGES, strict=True)]
    assert got == pytest.approx(list(expected), abs=1e-9)
    assert got[0] > got[2] > 0.0


def test_shared_rare_words_count_and_words_every_image_has_do_not() -> None:
    consensus = CaptionConsensus([["a red roof ."], ["a green field ."], ["a grey road ."]])
    references = ["a red roof ."]
    assert consensus.score("a red roof", references) > consensus.score("a roof", references)
    assert consensus.score("a", references) == 0.0  # in every document: no weight
    assert consensus.score("a red roof", []) == 0.0
    assert consensus.score("", references) == 0.0


def test_a_corpus_is_needed() -> None:
    with pytest.raises(ValueError, match="corpus"):
        CaptionConsensus([])
