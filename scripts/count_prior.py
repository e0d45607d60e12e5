"""Can an image's nearest train images tell its count? (a script, not `capret eval`).

    .venv/bin/python scripts/count_prior.py [--datastore weights/datastore] [--k 5 15 60]

Every train count question (as ``engine/training/questions.py`` makes them from the captions)
answered by the number that the captions of the image's k nearest train images (cosine of the
datastore's vectors, the image itself left out) give the object most often, one vote per
caption or per distinct caption, "two" where none gives one; printed against always "two".
Then each answered by the count prior the answer tuning teaches (``questions.count_prior``: the
number the object's other train count questions give most often), the question itself left
out. Train only, so nothing is chosen on `val`. On RSICD no k beats the prior (docs/EXPERIMENTS.md,
"Can the image tell the count at all?"), which is why the chat says a count as a guess.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from engine.datastore import CaptionDatastore, load_datastore, nearest_rows
from engine.training.questions import (
    OBJECTS,
    Question,
    SceneObject,
    count_prior,
    count_question,
    questions_for,
    stated_number,
)

PRIOR = 2  # the commonest count answer


def count_questions(store: CaptionDatastore) -> list[tuple[int, Question]]:
    """(datastore row, question) of every train count question."""
    return [(row, q)
            for row, (key, captions) in enumerate(zip(store.keys, store.captions, strict=True))
            for q in questions_for(key, captions, None, {}, []) if q.kind == "count"]


def prior_left_out(asked: list[Question]) -> float:
    """Share of ``asked`` the count prior of the others answers right."""
    right = sum(count_prior(asked[:i] + asked[i + 1:])(q.text) == q.expected
                for i, q in enumerate(asked))
    return right / len(asked)


def voted(captions: Iterable[str], obj: SceneObject) -> int:
    """The number the captions give ``obj`` most often; PRIOR where none gives one."""
    votes = Counter(n for c in captions if (n := stated_number(c, obj)) is not None)
    return votes.most_common(1)[0][0] if votes else PRIOR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datastore", default="weights/datastore")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 15, 30, 60])
    args = parser.parse_args()
    store = load_datastore(Path(args.datastore))
    questions = count_questions(store)
    by_text = {count_question(o): o for o in OBJECTS}
    asked = [(row, by_text[q.text], int(q.expected)) for row, q in questions]
    prior = sum(expected == PRIOR for _, _, expected in asked)
    print(f"{len(asked)} train count questions; always {PRIOR}: {100 * prior / len(asked):.1f}%")
    left_out = prior_left_out([q for _, q in questions])
    print(f"each object's count prior, the question left out: {100 * left_out:.1f}%")
    rows = sorted({row for row, _, _ in asked})
    for k in args.k:
        near = dict(zip(rows, nearest_rows(store.vectors[rows], [store.keys[r] for r in rows],
                                           store, k), strict=True))
        for votes in ("all", "distinct"):
            right = sum(voted((c for n in near[row] for c in (
                store.captions[n] if votes == "all" else set(store.captions[n]))), obj) == expected
                for row, obj, expected in asked)
            print(f"k {k:>2}, {votes:>8} votes: {100 * right / len(asked):.1f}%")


if __name__ == "__main__":
    main()
