"""A quick screen of a bridge's follow-up answers on RSICD `val` (a script, not `capret eval`).

    .venv/bin/python scripts/followup_screen.py --captions runs/val.json [--bridge B]

Asks every count question of `val` (37; too few to sample) and 400 other follow-up questions
drawn at random (seed 0), each after the image's description from ``--captions`` (a `capret
eval --json` output), as `capret eval` asks them, and prints the accuracy per kind: a few
minutes instead of the whole evaluation's twenty, for choosing which answer-tuning run to
evaluate in full.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

from bot.config import load_config
from engine.factory import create_engine
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT
from engine.training.data import evaluation_records
from engine.training.evaluate import _batched, _features
from engine.training.pipeline import with_bridge
from engine.training.questions import answer_is_right, questions_for, typical_classes
from engine.types import GenerationOptions, TextPart, Turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--bridge", default="weights/bridge")
    parser.add_argument("--captions", required=True, help="a `capret eval --json` output")
    args = parser.parse_args()
    config = load_config(args.config)
    engine = create_engine(with_bridge(config.engine, Path(args.bridge).resolve()))
    records = evaluation_records(config.train.sources, "val")
    described = json.loads(Path(args.captions).read_text())["captions"]
    typical = typical_classes((r.captions, r.label) for r in records)
    labels = sorted({r.label for r in records if r.label})
    asked = [(r, q) for r in records
             for q in questions_for(r.key, r.captions, r.label, typical, labels)]
    others = [a for a in asked if a[1].kind != "count"]
    chosen = [a for a in asked if a[1].kind == "count"] + random.Random(0).sample(others, 400)
    features = _features(engine, list({r.path.name: r for r, _ in chosen}.values()))
    dialogues = [[image_turn(CAPTION_PROMPT, r.path.name),
                  Turn("assistant", (TextPart(described[r.path.name]),)),
                  Turn("user", (TextPart(q.text),))] for r, q in chosen]
    options = GenerationOptions(max_new_tokens=12, allow_retrieval=False)
    answers = _batched(engine, dialogues, features, options, "follow-up questions")
    right: dict[str, list[bool]] = defaultdict(list)
    for (_, question), answer in zip(chosen, answers, strict=True):
        right[question.kind].append(answer_is_right(question, answer))
        if question.kind in ("presence", "scene_yes_no"):
            right["yes/no"].append(answer_is_right(question, answer))
    for kind, flags in right.items():
        print(f"{kind}: {100 * sum(flags) / len(flags):.1f}% of {len(flags)}")


if __name__ == "__main__":
    main()
