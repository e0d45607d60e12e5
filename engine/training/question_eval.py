"""Questions people ask, scored on a split: each kind of ``engine/intent.py`` in phrasings
written apart from its rules and never used in training, answered as the chat answers them
(``RSCapRet.answer`` after the model's own description).

- searching vs answering: requests for images (val captions and classes in request
  phrasings) must search, questions and instructions about an image must not (rules only);
- presence in unseen phrasings (the taught objects), and of things outside the taught
  vocabulary (``UNTAUGHT``: named in two of an image's captions -> yes; typical of other
  classes and named in none -> no);
- "which one is the <class>?" over two images of different classes; "are these the same
  kind of place?" over pairs of the same and of different classes;
- "which of these is a <class>?" over four results of different classes;
- more detail: longer than the first description and with a higher recall of the
  references' content words (a proxy for their nouns: no tagger ships here);
- a part ("what is on the left?"): names the part, is no scene template, and how many of the
  references' content words it has against the whole description;
- no reply to a question other than the scene question is the scene template.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from engine.answers import Seen
from engine.intent import SEARCHES, read_intent
from engine.model import RSCapRet
from engine.prompt import image_turn
from engine.tokens import CAPTION_PROMPT, humanize_label
from engine.training.data import CaptionedImage
from engine.training.questions import caption_tokens, questions_for, typical_classes
from engine.types import TextPart, Turn

# Phrasings of the evaluation only: none is an example in the rules' tests or in training.
PRESENCE_PHRASINGS = (
    "Can you make out any {plural} in this picture?", "Do I see a {singular} here?",
    "Any {plural} visible?", "Is a {singular} visible in the image?",
    "Does this picture contain {plural}?", "Could you spot a {singular}?",
    "Are {plural} present in this photo?", "I wonder, are there {plural} in it?",
)
WHICH_PHRASINGS = ("Which of the two is the {name}?", "Which picture shows the {name}?",
                   "Which one is the {name}?", "Which image has the {name}?")
SAME_PHRASINGS = ("Are these the same kind of place?", "Do both images show the same type of "
                  "area?", "Are they similar kinds of scene?")
RESULT_PHRASINGS = ("Which of these is a {name}?", "Which of them shows a {name}?")
REGION_PHRASINGS = ("What is on the left side?", "What can you see in the top right?",
                    "What's in the middle of it?", "Tell me what is at the bottom.")
DETAIL_PHRASINGS = ("Describe it in more detail.", "What else can you see?",
                    "Can you elaborate on this picture?")
SEARCH_PHRASINGS = (
    "Could you find pictures of {x}?", "I'd like to see {x}", "Get me photos showing {x}",
    "Any images of {x}?", "Look for {x}", "Show me more {cls} like this",
    "search for {x} please", "I'm looking for {x}", "find me {cls} images",
    "can you show me other {cls}s?")
ABOUT_PHRASINGS = (
    "What is in this image?", "Is there a {singular}?", "How many {plural} can you count?",
    "What colour are the {plural}?", "Describe it in more detail.", "What is on the left?",
    "Which one is the {cls}?", "What changed between them?", "Where is the {singular}?",
    "Show me where the {singular} is.", "Can you see any {plural} here?",
    "Tell me more about this picture.", "Is this a {cls}?", "What kind of place is this?",
    "Are these the same kind of place?", "describe the second one")
# Things people ask about that the taught vocabulary lacks.
UNTAUGHT = ("water", "grass", "sand", "track", "lawn", "plants", "waves", "square", "pool",
            "green", "ships", "island", "factory", "bushes", "shrubs")
_TEMPLATE = re.compile(r"^(yes, |no, )?this is an? [a-z ]+ scene\.?$", re.I)
_STOP = {"a", "an", "the", "of", "in", "on", "and", "with", "is", "are", "some", "many", "there",
         "it", "its", "two", "three", "four", "several", "lots", "by", "near", "next", "to",
         "be", "can", "seen", "which", "that", "this", "at", "side", "area", "around", "very"}


def evaluate_questions(engine: RSCapRet, records: Sequence[CaptionedImage],
                       seed: int = 0) -> dict[str, Any]:
    """Every kind's score on ``records`` (and each reply, for reading)."""
    rng = random.Random(seed)
    labels = sorted({r.label for r in records if r.label})
    typical = typical_classes((r.captions, r.label) for r in records)
    seen = {r.path.name: _seen(engine, r) for r in tqdm(records, desc="images", unit="image")}
    first = {name: engine.answer(read_intent(CAPTION_PROMPT, 1), [image_turn(CAPTION_PROMPT,
             name)], [s]) for name, s in tqdm(seen.items(), desc="descriptions", unit="image")}
    rows: list[dict[str, Any]] = []
    for r in tqdm(records, desc="questions", unit="image"):
        rows += _single(engine, r, seen, first, typical, labels, rng)
        rows += _pairs(engine, r, records, seen, rng)
    rows += _routing(records, labels, typical, rng)
    return {"metrics": question_scores(rows), "rows": rows}


def question_scores(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per kind: the share (%) of rows whose check holds, and how many rows."""
    out: dict[str, float] = {}
    for kind in sorted({r["kind"] for r in rows}):
        mine = [r for r in rows if r["kind"] == kind]
        for check in sorted({c for r in mine for c in r["checks"]}):
            flags = [r["checks"][check] for r in mine if check in r["checks"]]
            out[f"q_{kind}_{check}_%"] = round(100 * float(np.mean(flags)), 1)
        out[f"q_{kind}_n"] = len(mine)
    asked = [r for r in rows if r["kind"] not in ("scene", "routing_search", "routing_answer")
             and "reply" in r]
    out["q_scene_template_in_non_scene_%"] = round(
        100 * float(np.mean([bool(_TEMPLATE.match(r["reply"].strip())) for r in asked])), 1)
    return out


def _seen(engine: RSCapRet, record: CaptionedImage) -> Seen:
    image = Image.open(record.path).convert("RGB")
    return Seen(record.path.name, image, engine.embed_images([image])[0])


def _dialogue(name: str, first: str, question: str) -> list[Turn]:
    return [image_turn(CAPTION_PROMPT, name), Turn("assistant", (TextPart(first),)),
            Turn("user", (TextPart(question),))]


def _ask(engine: RSCapRet, question: str, dialogue: list[Turn], seen: list[Seen],
         results: int = 0) -> tuple[str, str]:
    intent = read_intent(question, 0 if results else len(seen), results)
    return intent.kind, engine.answer(intent, dialogue, seen)


def _said_yes(reply: str) -> bool:
    words = caption_tokens(reply)
    return bool(words) and words[0] == "yes"


def _single(engine: RSCapRet, r: CaptionedImage, seen: dict[str, Seen],
            first: dict[str, str], typical: dict[str, set[str]], labels: Sequence[str],
            rng: random.Random) -> list[dict[str, Any]]:
    """Presence (unseen phrasings and things), a part, and more detail, for one image."""
    name, rows = r.path.name, []
    for q in questions_for(r.key, r.captions, r.label, typical, labels):
        if q.kind != "presence":
            continue
        obj = re.sub(r"^(is there a |are there any )|\?$", "", q.text, flags=re.I)
        text = rng.choice(PRESENCE_PHRASINGS).format(plural=obj, singular=obj)
        kind, reply = _ask(engine, text, _dialogue(name, first[name], text), [seen[name]])
        rows.append(_row("presence_unseen_phrasing", text, reply, routed=kind == "presence",
                         right=_said_yes(reply) == (q.expected == "yes")))
    if (thing := _untaught(r, typical, rng)) is not None:
        word, expected = thing
        text = rng.choice(PRESENCE_PHRASINGS).format(plural=word, singular=word)
        kind, reply = _ask(engine, text, _dialogue(name, first[name], text), [seen[name]])
        rows.append(_row("presence_untaught_thing", text, reply, routed=kind == "presence",
                         right=_said_yes(reply) == expected))
    refs = _content(" ".join(r.captions))
    text = rng.choice(REGION_PHRASINGS)
    kind, reply = _ask(engine, text, _dialogue(name, first[name], text), [seen[name]])
    part = read_intent(text, 1).region
    rows.append(_row("region", text, reply, routed=kind == "region",
                     names_part=part is not None and part.name.split()[-1] in reply.lower(),
                     not_template=not _TEMPLATE.match(reply.strip()),
                     words_as_many_as_whole=len(_content(reply) & refs)
                     >= len(_content(first[name]) & refs)))
    text = rng.choice(DETAIL_PHRASINGS)
    kind, reply = _ask(engine, text, _dialogue(name, first[name], text), [seen[name]])
    longer = len(reply.split()) > len(first[name].split())
    recall = len(_content(reply) & refs) > len(_content(first[name]) & refs)
    rows.append(_row("detail", text, reply, routed=kind == "detail", longer=longer,
                     more_recall=recall, longer_and_more_recall=longer and recall))
    return rows


def _pairs(engine: RSCapRet, r: CaptionedImage, records: Sequence[CaptionedImage],
           seen: dict[str, Seen], rng: random.Random) -> list[dict[str, Any]]:
    """"Which one is the <class>?" and "the same kind of place?" with another image, and
    "which of these is a <class>?" over four results.
    """
    others = [o for o in records if o.label and o.label != r.label]
    same = [o for o in records if o.label == r.label and o.path != r.path]
    if not r.label or not others:
        return []
    rows = []
    other = rng.choice(others)
    pair = [seen[r.path.name], seen[other.path.name]]
    if rng.random() < 0.5:
        pair.reverse()
    text = rng.choice(WHICH_PHRASINGS).format(name=humanize_label(r.label))
    kind, reply = _ask(engine, text, [image_turn(text)], pair)
    right = pair.index(seen[r.path.name])
    rows.append(_row("which_class", text, reply, routed=kind == "which",
                     right=_names_ordinal(reply, right)))
    match = rng.choice(same) if same and rng.random() < 0.5 else other
    text = rng.choice(SAME_PHRASINGS)
    kind, reply = _ask(engine, text, [image_turn(text)], [seen[r.path.name], seen[match.path.name]])
    rows.append(_row("same_kind", text, reply, routed=kind == "same_kind",
                     right=_said_yes(reply) == (match.label == r.label)))
    distinct = list({o.label: o for o in rng.sample(others, min(len(others), 12))}.values())[:3]
    if len(distinct) == 3:
        shown = [seen[o.path.name] for o in [r, *distinct]]
        rng.shuffle(shown)
        text = rng.choice(RESULT_PHRASINGS).format(name=humanize_label(r.label))
        kind, reply = _ask(engine, text, [image_turn(text)], shown, results=len(shown))
        rows.append(_row("which_of_results", text, reply, routed=kind == "which",
                         right=_names_ordinal(reply, shown.index(seen[r.path.name]))))
    return rows


def _routing(records: Sequence[CaptionedImage], labels: Sequence[str],
             typical: dict[str, set[str]], rng: random.Random) -> list[dict[str, Any]]:
    """Requests for images must search and questions about images must not (rules only)."""
    things = sorted(typical)
    rows = []
    for r in records:
        caption = rng.choice(r.captions).rstrip(" .") if r.captions else "an airport"
        cls = humanize_label(r.label or rng.choice(labels))
        ask = rng.choice(SEARCH_PHRASINGS).format(x=caption, cls=cls)
        images = rng.choice((0, 1, 2))
        kind = read_intent(ask, images).kind
        rows.append(_row("routing_search", ask, None, right=kind in SEARCHES))
        thing = rng.choice(things)
        about = rng.choice(ABOUT_PHRASINGS).format(singular=thing, plural=thing + "s", cls=cls)
        kind = read_intent(about, rng.choice((1, 2))).kind
        rows.append(_row("routing_answer", about, None, right=kind not in SEARCHES))
    return rows


def _untaught(r: CaptionedImage, typical: dict[str, set[str]],
              rng: random.Random) -> tuple[str, bool] | None:
    """A thing outside the taught vocabulary and whether the captions say it is there."""
    counts = Counter(w for c in set(r.captions) for w in set(caption_tokens(c)))
    present = [w for w in UNTAUGHT if counts[w] >= min(2, len(set(r.captions)))]
    absent = [w for w in UNTAUGHT if counts[w] == 0]
    if present and (not absent or rng.random() < 0.5):
        return rng.choice(present), True
    return (rng.choice(absent), False) if absent else None


def _names_ordinal(reply: str, index: int) -> bool:
    names = ("first", "second", "third", "fourth")
    said = [n for n in names if re.search(rf"\b{n}\b", reply.lower())]
    return said[:1] == [names[index]]


def _content(text: str) -> set[str]:
    return {w.rstrip("s") for w in caption_tokens(text) if w not in _STOP and len(w) > 2}


def _row(kind: str, question: str, reply: str | None, **checks: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": kind, "question": question, "checks": checks}
    if reply is not None:
        row["reply"] = reply
    return row
