"""Retrieval and captioning metrics on cases small enough to check by hand."""

from __future__ import annotations

import shutil

import pytest
import torch

from engine.training.metrics import caption_metrics, retrieval_from_scores, retrieval_metrics


def test_perfect_retrieval_scores_100() -> None:
    image = torch.eye(3)  # (3, 3)
    text = torch.eye(3)[[0, 0, 1, 2]]  # captions 0,1 -> image 0; 2 -> 1; 3 -> 2
    m = retrieval_metrics(image, text, [0, 0, 1, 2])
    assert m.t2i == {1: 100.0, 5: 100.0, 10: 100.0}
    assert m.i2t == {1: 100.0, 5: 100.0, 10: 100.0}
    assert m.mean_recall == 100.0
    assert m.t2i_ranks == [1, 1, 1, 1]
    assert m.i2t_ranks == [1, 1, 1]


def test_ranks_by_hand() -> None:
    # rows: captions, columns: images; owner of each caption below.
    scores = torch.tensor([
        [0.9, 0.1, 0.0],  # caption 0 of image 0: rank 1
        [0.1, 0.8, 0.05],  # caption 1 of image 0: rank 2
        [0.5, 0.2, 0.9],  # caption 2 of image 1: rank 3
        [0.0, 0.3, 0.7],  # caption 3 of image 2: rank 1
    ])
    m = retrieval_from_scores(scores, [0, 0, 1, 2], ks=(1, 2))
    assert m.t2i_ranks == [1, 2, 3, 1]
    assert m.t2i == {1: 50.0, 2: 75.0}
    # image 0 column: 0.9 0.1 0.5 0.0 -> its caption 0 is first: rank 1
    # image 1 column: 0.1 0.8 0.2 0.3 -> its caption 2 (0.2) is behind 0.8 and 0.3: rank 3
    # image 2 column: 0.0 0.05 0.9 0.7 -> its caption 3 (0.7) is behind 0.9: rank 2
    assert m.i2t_ranks == [1, 3, 2]
    assert m.i2t == {1: pytest.approx(100 / 3), 2: pytest.approx(200 / 3)}
    assert m.mean_recall == pytest.approx((50 + 75 + 100 / 3 + 200 / 3) / 4)
    assert set(m.summary()) == {"t2i_R@1", "t2i_R@2", "i2t_R@1", "i2t_R@2", "mR"}


def test_image_without_caption_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one caption"):
        retrieval_from_scores(torch.zeros(2, 3), [0, 1])


NEEDS_JAVA = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap needs java")
REFS = {"a": ["a plane is parked at the airport", "planes at an airport"],
        "b": ["a river runs through green fields", "green fields beside a river"]}


@NEEDS_JAVA
def test_caption_metrics_identical_and_disjoint() -> None:
    same = caption_metrics({"a": ["a plane is parked at the airport"],
                            "b": ["a river runs through green fields"]}, REFS, meteor=False)
    assert same["BLEU-1"] == pytest.approx(1.0)
    assert same["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert same["ROUGE-L"] == pytest.approx(1.0)
    assert "METEOR" not in same
    other = caption_metrics({"a": ["blue sea"], "b": ["white snow"]}, REFS, meteor=False)
    assert other["BLEU-1"] < 0.01 and other["CIDEr"] < 0.01 and other["ROUGE-L"] == 0.0


@NEEDS_JAVA
@pytest.mark.slow
def test_meteor_of_identical_captions_is_high() -> None:
    same = caption_metrics({"a": ["a plane is parked at the airport"]}, REFS)
    assert same["METEOR"] > 0.9


def test_caption_metrics_need_references() -> None:
    with pytest.raises(ValueError, match="no references"):
        caption_metrics({"x": ["a"]}, {"y": ["b"]})
