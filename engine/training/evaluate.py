"""Evaluate the chat model on a caption split: captions, [RET] retrieval, scene questions.

- captioning: the model's greedy description of each image against its references (BLEU-1..4,
  METEOR, ROUGE-L, CIDEr);
- retrieval: every reference caption, asked as "Show me <caption>", is a [RET] query over the
  split's images (t2i); every image's bridge vector queries all captions (i2t); R@1/5/10, mR;
- scene accuracy: the answer to "What kind of scene is this?" names the dataset's label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT, RETRIEVAL_PROMPTS, SCENE_PROMPT, humanize_label
from engine.training.data import CaptionedImage
from engine.training.metrics import caption_metrics, retrieval_metrics
from engine.types import GenerationOptions, TextPart, Turn

logger = logging.getLogger(__name__)


@dataclass
class EvalReport:
    """Every metric plus what is needed to recompute them."""

    metrics: dict[str, float] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)  # file name -> generated caption
    scene_answers: dict[str, str] = field(default_factory=dict)
    t2i_ranks: list[int] = field(default_factory=list)  # 1-based, one per reference caption
    i2t_ranks: list[int] = field(default_factory=list)  # 1-based, one per image

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "captions": self.captions,
                "scene_answers": self.scene_answers, "t2i_ranks": self.t2i_ranks,
                "i2t_ranks": self.i2t_ranks}


def evaluate(engine: RSCapRet, records: Sequence[CaptionedImage],
             max_new_tokens: int = 40) -> EvalReport:
    """Run all three evaluations over ``records`` (each image with its references)."""
    names = [r.path.name for r in records]
    features = _features(engine, records)  # name -> (D_img,)
    report = EvalReport()
    options = GenerationOptions(strategy="greedy", max_new_tokens=max_new_tokens,
                                allow_retrieval=False)
    for name in tqdm(names, desc="captions", unit="image"):
        report.captions[name] = _ask(engine, CAPTION_PROMPT, name, features[name], options)
    references = {r.path.name: list(r.captions) for r in records}
    report.metrics.update(caption_metrics({k: [v] for k, v in report.captions.items()},
                                          references))
    report.metrics.update(_retrieval(engine, records, features, report))
    labelled = [r for r in records if r.label]
    if labelled:
        short = GenerationOptions(strategy="greedy", max_new_tokens=12, allow_retrieval=False)
        for r in tqdm(labelled, desc="scene questions", unit="image"):
            name = r.path.name
            report.scene_answers[name] = _ask(engine, SCENE_PROMPT, name, features[name], short)
        hits = [scene_matches(report.scene_answers[r.path.name], r.label or "") for r in labelled]
        report.metrics["scene_accuracy"] = 100.0 * sum(hits) / len(hits)
    return report


def scene_matches(answer: str, label: str) -> bool:
    """The answer names the label (in words: 'dense residential' for 'denseresidential')."""
    text = " ".join(answer.lower().replace("-", " ").split())
    return humanize_label(label) in text or label in text.replace(" ", "")


def _features(engine: RSCapRet, records: Sequence[CaptionedImage]) -> dict[str, np.ndarray]:
    out = {}
    for start in tqdm(range(0, len(records), 32), desc="image features", unit="batch"):
        chunk = records[start:start + 32]
        images = [Image.open(r.path).convert("RGB") for r in chunk]
        for r, f in zip(chunk, engine.embed_images(images), strict=True):
            out[r.path.name] = f
    return out


def _ask(engine: RSCapRet, prompt: str, name: str, feature: np.ndarray,
         options: GenerationOptions) -> str:
    return engine.generate([image_turn(prompt, name)], {name: feature}, options).text


def _retrieval(engine: RSCapRet, records: Sequence[CaptionedImage],
               features: dict[str, np.ndarray], report: EvalReport) -> dict[str, float]:
    images = engine.image_query(np.stack([features[r.path.name] for r in records]))  # (N, S)
    requests = [(row, RETRIEVAL_PROMPTS[0].format(query=c))
                for row, r in enumerate(records) for c in r.captions]
    queries = []
    for start in tqdm(range(0, len(requests), 16), desc="retrieval queries", unit="batch"):
        chunk = requests[start:start + 16]
        queries.append(engine.retrieve_batch(
            [[Turn("user", (TextPart(text),))] for _, text in chunk], {}))
    owners = [row for row, _ in requests]
    result = retrieval_metrics(torch.from_numpy(images), torch.from_numpy(np.concatenate(queries)),
                               owners)
    report.t2i_ranks, report.i2t_ranks = result.t2i_ranks, result.i2t_ranks
    return result.summary()


def markdown_table(metrics: dict[str, float]) -> str:
    """One row of every metric (captioning scores as fractions, recalls in percent)."""
    keys = list(metrics)
    row = [f"{metrics[k]:.3f}" if metrics[k] < 2 and "R@" not in k and k != "mR"
           else f"{metrics[k]:.2f}" for k in keys]
    return "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n| " + " | ".join(row) + " |"
