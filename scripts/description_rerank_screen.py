"""Screen the weight of the search match that re-ranks beam-searched descriptions, on `val`.

    .venv/bin/python scripts/description_rerank_screen.py --out runs/rerank.json \
        [--limit N] [--weights 4,4.5,5,6,8]

Describes each image once through the engine's own description path (beam search over
``--beams``, ``RSCapRet._search_match``), keeping every candidate it re-ranks with its
log-probability and its search match, so each weight's choice is scored without decoding
again: BLEU-4, ROUGE-L, CIDEr and distinct descriptions per weight (weight 0 = plain beam).
About 2.5 s an image on 2 cores (45 min for the whole split); ``--out`` is rewritten every
50 images and a rerun resumes from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from bot.config import load_config
from engine.factory import create_engine
from engine.generate import BeamCandidate
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT
from engine.training.data import evaluation_records
from engine.training.evaluate import variety
from engine.training.metrics import caption_metrics
from engine.types import GenerationOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--weights", default="0,4,4.5,5,6,8")
    args = parser.parse_args()
    config = load_config(args.config)
    generation = dataclasses.replace(config.engine.generation, description_beams=args.beams,
                                     description_match=1.0)
    engine = create_engine(dataclasses.replace(config.engine, generation=generation))
    records = evaluation_records(config.train.sources, "val", args.limit)
    out = Path(args.out)
    kept: dict[str, list[dict]] = json.loads(out.read_text()) if out.is_file() else {}
    offered: list[dict] = []
    match = engine._search_match

    def recording(image: np.ndarray, weight: float
                  ) -> Callable[[Sequence[BeamCandidate]], list[float]]:
        bonus = match(image, 1.0)

        def keep(candidates: Sequence[BeamCandidate]) -> list[float]:
            offered[:] = [{"text": engine._text(c.ids), "log_prob": c.score, "match": m}
                          for c, m in zip(candidates, bonus(candidates), strict=True)]
            return [0.0] * len(candidates)  # the likeliest is decoded; choices come later

        return keep

    engine._search_match = recording  # type: ignore[method-assign]
    options = GenerationOptions(max_new_tokens=40, allow_retrieval=False)
    for done, r in enumerate(records, 1):
        if r.path.name not in kept:
            embedding = engine.embed_images([Image.open(r.path).convert("RGB")])[0]
            engine.generate([image_turn(CAPTION_PROMPT, "image")], {"image": embedding}, options)
            kept[r.path.name] = list(offered)
        if done % 50 == 0 or done == len(records):
            out.write_text(json.dumps(kept))
            print(f"{done} images", flush=True)
    references = {r.path.name: list(r.captions) for r in records}
    for weight in [float(w) for w in args.weights.split(",")]:
        chosen = {name: max(kept[name], key=lambda c: c["log_prob"] + weight * c["match"])["text"]
                  for name in references}
        scores = caption_metrics({k: [v] for k, v in chosen.items()}, references, meteor=False)
        scores.update(variety(chosen))
        print(f"weight {weight:g}: " + ", ".join(
            f"{k} {scores[k]:.3f}" for k in ("BLEU-4", "ROUGE-L", "CIDEr",
                                             "distinct_captions_%")), flush=True)
    print(f"best candidate per image by its own CIDEr (any re-ranker's ceiling): "
          f"{pool_ceiling(kept, references):.3f}", flush=True)


def pool_ceiling(kept: dict[str, list[dict]], references: dict[str, list[str]]) -> float:
    """Mean over images of the best CIDEr among its candidates.

    pycocoevalcap's CIDEr takes its document frequencies from the references alone, so an
    image's score does not depend on what the other images were given: scoring the i-th
    candidate of every image in one call and keeping each image's best is exact.
    """
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    names = sorted(references)
    tokenizer = PTBTokenizer()
    truth = tokenizer.tokenize({n: [{"caption": c} for c in references[n]] for n in names})
    best = np.full(len(names), -np.inf)
    for i in range(max(len(kept[n]) for n in names)):
        offered = {n: [{"caption": kept[n][min(i, len(kept[n]) - 1)]["text"]}] for n in names}
        _, scores = Cider().compute_score(truth, tokenizer.tokenize(offered))
        best = np.maximum(best, scores)
    return float(best.mean())


if __name__ == "__main__":
    main()
