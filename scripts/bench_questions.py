"""Time of a follow-up reply per kind of question, against the follow-up the chat gave before
questions were read (the model's greedy answer to the words as typed), in one run on one host.

    .venv/bin/python scripts/bench_questions.py [--config configs/default.yaml] [--images 6]

Each image is described first (the conversation a follow-up comes in); then every question
below is asked after it both ways. Prints the median seconds per kind, its ratio to the
model's own answer, and one reply of each kind. The target (issue: questions people ask):
at most 1.3x, except "more detail", which may cost one description per part it names.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

from PIL import Image

from bot.config import load_config
from engine import create_engine
from engine.answers import Seen
from engine.intent import read_intent
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT
from engine.types import GenerationOptions, TextPart, Turn

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "rsicd" / "images"
QUESTIONS = ("Is there a runway?", "Can you see any boats?", "How many planes are there?",
             "What kind of place is this?", "What is on the left side?", "Where is the river?",
             "Describe it in more detail.", "Do you see any water here?")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    parser.add_argument("--images", type=int, default=6)
    args = parser.parse_args()
    engine = create_engine(load_config(args.config).engine)
    times: dict[str, list[float]] = defaultdict(list)
    replies: dict[str, str] = {}
    for path in sorted(IMAGES.glob("*.jpg"))[: args.images + 1]:
        image = Image.open(path).convert("RGB")
        seen = Seen(path.name, image, engine.embed_images([image])[0])
        first = engine.answer(read_intent(CAPTION_PROMPT, 1), [image_turn(CAPTION_PROMPT,
                              seen.key)], [seen])
        for question in QUESTIONS:
            _time_both(engine, seen, first, question, times, replies)
    _report(times, replies)


def _time_both(engine: RSCapRet, seen: Seen, first: str, question: str,
               times: dict[str, list[float]], replies: dict[str, str]) -> None:
    dialogue = [image_turn(CAPTION_PROMPT, seen.key), Turn("assistant", (TextPart(first),)),
                Turn("user", (TextPart(question),))]
    started = time.perf_counter()
    engine.generate(dialogue, {seen.key: seen.embedding},
                    GenerationOptions(allow_retrieval=False, strategy="greedy"))
    times["model as typed"].append(time.perf_counter() - started)
    intent = read_intent(question, 1)
    started = time.perf_counter()
    replies[question] = engine.answer(intent, dialogue, [seen])
    times[question].append(time.perf_counter() - started)


def _report(times: dict[str, list[float]], replies: dict[str, str]) -> None:
    # The first image warms up.
    base = statistics.median(times["model as typed"][1:])
    print(f"{'follow-up':34} {'p50 s':>7} {'x model':>8}")
    for kind, seconds in times.items():
        p50 = statistics.median(seconds[1:])
        print(f"{kind:34} {p50:7.2f} {p50 / base:8.2f}  {replies.get(kind, '')[:70]}")


if __name__ == "__main__":
    main()
