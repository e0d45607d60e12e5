"""Evaluate the chat model on a caption split: captions, [RET] retrieval, scene, follow-ups.

- captioning: the model's description of each image (the configured decoding, as the chat
  decodes a photo) against its references (BLEU-1..4, METEOR, ROUGE-L, CIDEr), and how
  varied the descriptions are (distinct descriptions per image, vocabulary size);
- retrieval: every reference caption, asked as "Show me <caption>", is a [RET] query over the
  split's images (t2i); every image's bridge vector queries all captions (i2t); R@1/5/10, mR.
  The images' vectors are made as the bot's gallery makes them (``embed_for_gallery``);
- scene accuracy: the answer to "What kind of scene is this?", by the matcher of
  ``scene_match.names_scene`` and by the earlier strict one;
- follow-ups: grounded questions from the split's captions (``questions``), each asked after
  the model's own description, the image staying in context; accuracy per kind.

Every reply is decoded by ``RSCapRet.generate_batch``: the chat's own path (``generate``, the
configured strategy, the continuous batcher), many requests in flight at once. Only the token
limits differ (40 for a description, 12 for an answer) and [RET] is forbidden.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from engine.intent import read_intent, search_request
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT, RETRIEVAL_PROMPTS, SCENE_PROMPT
from engine.training.data import CaptionedImage
from engine.training.metrics import caption_metrics, retrieval_metrics
from engine.training.question_eval import SEARCH_PHRASINGS
from engine.training.questions import (
    KINDS,
    Question,
    answer_is_right,
    questions_for,
    typical_classes,
)
from engine.training.scene_match import names_scene, names_scene_strict
from engine.types import GenerationOptions, TextPart, Turn

logger = logging.getLogger(__name__)
BATCH = 64  # requests submitted together; the batcher runs batching.max_rows at a time


@dataclass
class EvalReport:
    """Every metric plus what is needed to recompute them."""

    metrics: dict[str, float] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)  # file name -> generated caption
    scene_answers: dict[str, str] = field(default_factory=dict)
    followups: list[dict[str, Any]] = field(default_factory=list)
    t2i_ranks: list[int] = field(default_factory=list)  # 1-based, one per reference caption
    i2t_ranks: list[int] = field(default_factory=list)  # 1-based, one per image

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "captions": self.captions,
                "scene_answers": self.scene_answers, "followups": self.followups,
                "t2i_ranks": self.t2i_ranks, "i2t_ranks": self.i2t_ranks}


def evaluate(engine: RSCapRet, records: Sequence[CaptionedImage],
             max_new_tokens: int = 40) -> EvalReport:
    """Run every evaluation over ``records`` (each image with its references)."""
    report = replies(engine, records, max_new_tokens)
    references = {r.path.name: list(r.captions) for r in records}
    report.metrics.update(caption_metrics({k: [v] for k, v in report.captions.items()},
                                          references))
    report.metrics.update(variety(report.captions))
    report.metrics.update(_retrieval(engine, records, report))
    labelled = [(report.scene_answers[r.path.name], r.label) for r in records if r.label]
    if labelled:
        report.metrics.update(scene_scores(labelled))
    report.metrics.update(followup_scores(report.followups))
    return report


def replies(engine: RSCapRet, records: Sequence[CaptionedImage],
            max_new_tokens: int = 40) -> EvalReport:
    """What the model says about ``records``: each image's description, its scene answer and
    its follow-up answers (with whether each is right); no metrics yet.
    """
    features = _features(engine, records)  # name -> (D_img,)
    report = EvalReport()
    report.captions = _describe(engine, records, features, max_new_tokens)
    report.scene_answers = _scene_answers(engine, [r for r in records if r.label], features)
    report.followups = _followups(engine, records, features, report.captions)
    return report


def variety(captions: dict[str, str]) -> dict[str, float]:
    """Distinct descriptions per image (%) and the vocabulary of all descriptions."""
    words = {w for c in captions.values() for w in c.lower().replace(".", " ").split()}
    distinct = len(set(captions.values()))
    return {"distinct_captions_%": 100.0 * distinct / max(len(captions), 1),
            "vocabulary": float(len(words))}


def _describe(engine: RSCapRet, records: Sequence[CaptionedImage],
              features: dict[str, np.ndarray], max_new_tokens: int) -> dict[str, str]:
    names = [r.path.name for r in records]
    options = GenerationOptions(max_new_tokens=max_new_tokens, allow_retrieval=False)
    dialogues = [[image_turn(CAPTION_PROMPT, name)] for name in names]
    return dict(zip(names, _batched(engine, dialogues, features, options, "captions"),
                    strict=True))


def _scene_answers(engine: RSCapRet, records: Sequence[CaptionedImage],
                   features: dict[str, np.ndarray]) -> dict[str, str]:
    dialogues = [[image_turn(SCENE_PROMPT, r.path.name)] for r in records]
    short = GenerationOptions(max_new_tokens=12, allow_retrieval=False)
    answers = _batched(engine, dialogues, features, short, "scene questions")
    return {r.path.name: a for r, a in zip(records, answers, strict=True)}


def scene_scores(answered: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Scene accuracy (%) of (answer, label) pairs, by the matcher and by the strict one."""
    return {"scene_accuracy": _percent([names_scene(a, label) for a, label in answered]),
            "scene_accuracy_strict": _percent([names_scene_strict(a, label)
                                               for a, label in answered])}


def _followups(engine: RSCapRet, records: Sequence[CaptionedImage],
               features: dict[str, np.ndarray], captions: dict[str, str]
               ) -> list[dict[str, Any]]:
    """Each question asked after the model's own description, and whether it was answered."""
    typical = typical_classes((r.captions, r.label) for r in records)
    labels = sorted({r.label for r in records if r.label})
    asked: list[tuple[str, Question]] = [
        (r.path.name, q) for r in records
        for q in questions_for(r.key, r.captions, r.label, typical, labels)]
    dialogues = [[image_turn(CAPTION_PROMPT, name),
                  Turn("assistant", (TextPart(captions[name]),)),
                  Turn("user", (TextPart(q.text),))] for name, q in asked]
    short = GenerationOptions(max_new_tokens=12, allow_retrieval=False)
    answers = _batched(engine, dialogues, features, short, "follow-up questions")
    return [{"image": name, "kind": q.kind, "question": q.text, "expected": q.answer,
             "answer": answer, "right": answer_is_right(q, answer)}
            for (name, q), answer in zip(asked, answers, strict=True)]


def followup_scores(followups: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Accuracy (%) per kind of question, and of the yes/no kinds together."""
    out = {}
    for kind in KINDS:
        right = [f["right"] for f in followups if f["kind"] == kind]
        if right:
            out[f"followup_{kind}_%"] = _percent(right)
    yes_no = [f["right"] for f in followups if f["kind"] in ("presence", "scene_yes_no")]
    if yes_no:
        out["followup_yes_no_%"] = _percent(yes_no)
    return out


def _batched(engine: RSCapRet, dialogues: list[list[Turn]], features: dict[str, np.ndarray],
             options: GenerationOptions, what: str) -> list[str]:
    """The replies, BATCH dialogues submitted at a time (a progress bar step each)."""
    out: list[str] = []
    for start in tqdm(range(0, len(dialogues), BATCH), desc=what, unit="batch"):
        results = engine.generate_batch(dialogues[start:start + BATCH], features, options)
        out.extend(r.text for r in results)
    return out


def _features(engine: RSCapRet, records: Sequence[CaptionedImage]) -> dict[str, np.ndarray]:
    out = {}
    for start in tqdm(range(0, len(records), 32), desc="image features", unit="batch"):
        chunk = records[start:start + 32]
        images = [Image.open(r.path).convert("RGB") for r in chunk]
        for r, f in zip(chunk, engine.embed_images(images), strict=True):
            out[r.path.name] = f
    return out


def _gallery_embeddings(engine: RSCapRet, records: Sequence[CaptionedImage]) -> np.ndarray:
    """(N, D_img): what the gallery's vectors are made from, as the bot indexes images."""
    chunks = []
    for start in tqdm(range(0, len(records), 32), desc="gallery embeddings", unit="batch"):
        images = [Image.open(r.path).convert("RGB") for r in records[start:start + 32]]
        chunks.append(engine.embed_for_gallery(images))
    return np.concatenate(chunks)


def search_evaluation(engine: RSCapRet, records: Sequence[CaptionedImage],
                      as_asked: bool = False, seed: int = 0) -> EvalReport:
    """Search alone (``capret eval --search``): the recalls both ways, nothing generated.

    ``as_asked``: each reference asked in one of the held-out request phrasings (drawn with
    ``seed``) and read by the chat's rules, as the bot searches a user's message; otherwise
    asked as "Show me <reference>".
    """
    report = EvalReport()
    report.metrics.update(_retrieval(engine, records, report,
                                     _as_users_ask(seed) if as_asked else None))
    return report


def _as_users_ask(seed: int) -> Callable[[str], str]:
    """A reference -> the model's request for it, as the bot makes it from a user's message."""
    rng = random.Random(seed)
    phrasings = [p for p in SEARCH_PHRASINGS if "{x}" in p]

    def asked(reference: str) -> str:
        text = rng.choice(phrasings).format(x=reference.rstrip(" ."))
        return search_request(read_intent(text), text)
    return asked


def _retrieval(engine: RSCapRet, records: Sequence[CaptionedImage], report: EvalReport,
               request_for: Callable[[str], str] | None = None) -> dict[str, float]:
    """Every caption, asked as the chat asks a search (``request_for``; default "Show me
    <caption>"), against a gallery of ``records``: the recalls on the whole split, and the
    mR of its even and of its odd images, each half a gallery of its own (a change worth
    keeping holds on both).
    """
    images = torch.from_numpy(engine.gallery_rows(_gallery_embeddings(engine, records)))
    ask = request_for or (lambda c: RETRIEVAL_PROMPTS[0].format(query=c))
    requests = [(row, ask(c)) for row, r in enumerate(records) for c in r.captions]
    queries = []
    for start in tqdm(range(0, len(requests), 16), desc="retrieval queries", unit="batch"):
        chunk = requests[start:start + 16]
        queries.append(engine.retrieve_batch(
            [[Turn("user", (TextPart(text),))] for _, text in chunk], {}))
    asked = torch.from_numpy(np.concatenate(queries))
    owners = [row for row, _ in requests]
    result = retrieval_metrics(images, asked, owners)
    report.t2i_ranks, report.i2t_ranks = result.t2i_ranks, result.i2t_ranks
    out = result.summary()
    # A gallery row depends on its image alone, so each half slices the vectors made above.
    for name, first in (("even", 0), ("odd", 1)):
        rows = list(range(first, len(records), 2))
        position = {row: i for i, row in enumerate(rows)}
        mine = [q for q, row in enumerate(owners) if row in position]
        if rows and mine:
            half = retrieval_metrics(images[rows], asked[mine], [position[owners[q]] for q in mine])
            out[f"mR_{name}"] = half.summary()["mR"]
    return out


def rescore(report: dict[str, Any], records: Sequence[CaptionedImage],
            meteor: bool = True) -> dict[str, float]:
    """The per-image metrics of a saved report (``EvalReport.to_json``) over ``records`` only.

    Compares two models on a subset when only one of them was run on it: descriptions, their
    variety, scene answers and follow-ups are per image. Retrieval is not (its pool is the
    whole split), so it is left out.
    """
    names = {r.path.name for r in records}
    captions = {k: v for k, v in report["captions"].items() if k in names}
    out = caption_metrics({k: [v] for k, v in captions.items()},
                          {r.path.name: list(r.captions) for r in records}, meteor=meteor)
    out.update(variety(captions))
    labelled = [(report["scene_answers"][r.path.name], r.label) for r in records
                if r.label and r.path.name in report["scene_answers"]]
    if labelled:
        out.update(scene_scores(labelled))
    out.update(followup_scores([f for f in report["followups"] if f["image"] in names]))
    return out


def _percent(flags: Sequence[bool]) -> float:
    return 100.0 * sum(flags) / len(flags)


def markdown_table(metrics: dict[str, float]) -> str:
    """One row of every metric (captioning scores as fractions, recalls in percent)."""
    keys = list(metrics)
    row = [f"{metrics[k]:.3f}" if metrics[k] < 2 and "R@" not in k and not k.startswith("mR")
           else f"{metrics[k]:.2f}" for k in keys]
    return "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n| " + " | ".join(row) + " |"
