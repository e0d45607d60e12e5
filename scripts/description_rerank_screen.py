"""Screen the weights that re-rank beam-searched descriptions, on `val`.

    .venv/bin/python scripts/description_rerank_screen.py --out runs/rerank.json \
        [--limit N] [--weights 4,4.5,5,6,8] [--consensus 0,0.5,1]

Describes each image once through the engine's own description path (beam search over
``--beams``, ``RSCapRet._search_match``), keeping every candidate it re-ranks with its
log-probability, its search match and, where the bridge reads neighbour captions, its
agreement with them (``RSCapRet._consensus``), so each choice is scored without decoding
again: a candidate's score is its log-probability + ``--weights`` x its search match +
``--consensus`` x its CIDEr-D against every caption of the image's nearest train images. BLEU-4,
ROUGE-L, CIDEr and distinct descriptions per pair of weights, on the whole split and on its
even and odd images (weight 0 and 0 = plain beam). About 2.5 s an image on 2 cores (45 min
for the whole split); ``--out`` is rewritten every 50 images and a rerun resumes from it.
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
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT
from engine.training.data import CaptionedImage, evaluation_records
from engine.training.evaluate import variety
from engine.training.metrics import caption_metrics
from engine.types import GenerationOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--weights", default="0,4,4.5,5,6,8", help="search-match weights")
    parser.add_argument("--consensus", default="0",
                        help="weights of the agreement with the neighbours' captions")
    args = parser.parse_args()
    config = load_config(args.config)
    generation = dataclasses.replace(config.engine.generation, description_beams=args.beams,
                                     description_match=1.0)
    engine = create_engine(dataclasses.replace(config.engine, generation=generation))
    records = evaluation_records(config.train.sources, "val", args.limit)
    kept = _collect(engine, records, Path(args.out))
    references = {r.path.name: list(r.captions) for r in records}
    halves = {"whole": list(references), "even": [r.path.name for r in records[0::2]],
              "odd": [r.path.name for r in records[1::2]]}
    for weight in _floats(args.weights):
        for agree in _floats(args.consensus):
            chosen = {name: _best(kept[name]["candidates"], weight, agree)
                      for name in references}
            print(f"match {weight:g}, consensus {agree:g}: " + "; ".join(
                f"{half} " + _scores({n: chosen[n] for n in names}, references)
                for half, names in halves.items()), flush=True)
    print(f"best candidate per image by its own CIDEr (any re-ranker's ceiling): "
          f"{pool_ceiling(kept, references):.3f}", flush=True)


def _collect(engine: RSCapRet, records: Sequence[CaptionedImage], out: Path
             ) -> dict[str, dict]:
    """Each image's candidates (text, log-probability, search match, agreement with the
    neighbours' captions: 0 where the bridge reads none), resumed from and saved to ``out``
    every 50 images.
    """
    kept: dict[str, dict] = json.loads(out.read_text()) if out.is_file() else {}
    offered: list[dict] = []
    match = engine._search_match

    def recording(image: np.ndarray, weight: float
                  ) -> Callable[[Sequence[BeamCandidate]], list[float]]:
        bonus = match(image, 1.0)
        agreement = engine._consensus(image, 1.0) if engine.hints is not None else None

        def keep(candidates: Sequence[BeamCandidate]) -> list[float]:
            agreed = agreement(candidates) if agreement else [0.0] * len(candidates)
            offered[:] = [{"text": engine._text(c.ids), "log_prob": c.score, "match": m,
                           "consensus": a}
                          for c, m, a in zip(candidates, bonus(candidates), agreed, strict=True)]
            return [0.0] * len(candidates)  # the likeliest is decoded; choices come later

        return keep

    engine._search_match = recording  # type: ignore[method-assign]
    options = GenerationOptions(max_new_tokens=40, allow_retrieval=False)
    for done, r in enumerate(records, 1):
        if r.path.name not in kept:
            embedding = engine.embed_images([Image.open(r.path).convert("RGB")])[0]
            engine.generate([image_turn(CAPTION_PROMPT, "image")], {"image": embedding}, options)
            kept[r.path.name] = {"candidates": list(offered)}
        if done % 50 == 0 or done == len(records):
            out.write_text(json.dumps(kept))
            print(f"{done} images", flush=True)
    return kept


def _floats(listed: str) -> list[float]:
    return [float(w) for w in listed.split(",")]


def _best(candidates: list[dict], weight: float, agree: float) -> str:
    scored = [c["log_prob"] + weight * c["match"] + agree * c["consensus"] for c in candidates]
    return str(candidates[int(np.argmax(scored))]["text"])


def _scores(chosen: dict[str, str], references: dict[str, list[str]]) -> str:
    scores = caption_metrics({k: [v] for k, v in chosen.items()},
                             {k: references[k] for k in chosen}, meteor=False)
    scores.update(variety(chosen))
    return ", ".join(f"{k} {scores[k]:.3f}" for k in ("BLEU-4", "ROUGE-L", "CIDEr",
                                                       "distinct_captions_%"))


def pool_ceiling(kept: dict[str, dict], references: dict[str, list[str]]) -> float:
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
    pools = {n: kept[n]["candidates"] for n in names}
    for i in range(max(len(pools[n]) for n in names)):
        offered = {n: [{"caption": pools[n][min(i, len(pools[n]) - 1)]["text"]}] for n in names}
        _, scores = Cider().compute_score(truth, tokenizer.tokenize(offered))
        best = np.maximum(best, scores)
    return float(best.mean())


if __name__ == "__main__":
    main()
