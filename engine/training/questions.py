"""Follow-up questions about a scene, generated from its reference captions, deterministically.

Each image gets grounded question-answer pairs that its captions (and label) support:
- scene: "What kind of place is this?" -> "This is a beach scene."; "Is this an airport?" ->
  "No, this is a beach." (or "Yes, this is an airport.");
- presence: an object named in at least two of the image's distinct captions -> "Yes."; an
  object typical of other scene classes and named in none of its captions -> "No.";
- count: captions that give a number for an object all agree (at least two do) -> "Two.";
- colour: captions that give a colour for an object all agree (at least two do) -> "Red.".
The same function makes training dialogues and the `val` questions `capret eval` asks.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from engine.tokens import humanize_label, scene_answer, with_article
from engine.training.scene_match import names_scene

Kind = Literal["scene", "scene_yes_no", "presence", "count", "colour"]
KINDS: tuple[Kind, ...] = ("scene", "scene_yes_no", "presence", "count", "colour")
SCENE_QUESTION = "What kind of place is this?"
# An object is typical of a class when at least this share of the class's images name it.
TYPICAL_SHARE = 0.3

NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10}
COLOURS = {"red": "red", "white": "white", "green": "green", "blue": "blue", "gray": "grey",
           "grey": "grey", "yellow": "yellow", "brown": "brown", "black": "black",
           "orange": "orange"}


@dataclass(frozen=True)
class SceneObject:
    """A thing captions name: how questions call it and the token sequences that name it."""

    singular: str
    plural: str
    forms: tuple[tuple[str, ...], ...]
    mass: bool = False  # asked "Is there a river?" rather than "Are there any cars?"


def _obj(singular: str, plural: str, *extra: str, mass: bool = False) -> SceneObject:
    names = {singular, plural, *extra}
    return SceneObject(singular, plural, tuple(tuple(n.split()) for n in sorted(names)), mass)


OBJECTS: tuple[SceneObject, ...] = (
    _obj("river", "rivers", mass=True), _obj("lake", "lakes", mass=True),
    _obj("pond", "ponds", mass=True), _obj("bridge", "bridges", mass=True),
    _obj("road", "roads", mass=True), _obj("railway", "railways", "rails", mass=True),
    _obj("runway", "runways", mass=True), _obj("beach", "beaches", mass=True),
    _obj("sea", "seas", "ocean", "oceans", mass=True), _obj("desert", "deserts", mass=True),
    _obj("mountain", "mountains", "hills", mass=True), _obj("forest", "forests", mass=True),
    _obj("church", "churches", mass=True), _obj("stadium", "stadiums", mass=True),
    _obj("playground", "playgrounds", mass=True), _obj("viaduct", "viaducts", mass=True),
    _obj("swimming pool", "swimming pools", mass=True),
    _obj("parking lot", "parking lots", mass=True),
    _obj("plane", "planes", "airplane", "airplanes", "aircraft"),
    _obj("boat", "boats", "ship", "ships"), _obj("car", "cars", "vehicle", "vehicles"),
    _obj("building", "buildings"), _obj("house", "houses"), _obj("tree", "trees"),
    _obj("tennis court", "tennis courts"), _obj("basketball court", "basketball courts"),
    _obj("baseball field", "baseball fields", "baseballfield", "baseballfields"),
    _obj("football field", "football fields"), _obj("storage tank", "storage tanks", "tanks"),
    _obj("roof", "roofs"), _obj("farmland", "farmlands"), _obj("meadow", "meadows"),
)


@dataclass(frozen=True)
class Question:
    """One grounded question about an image and the answer its captions support."""

    kind: Kind
    text: str
    answer: str
    # What a reply must say to be right: "yes"/"no", a number, a colour, or a scene label.
    expected: str


def caption_tokens(caption: str) -> list[str]:
    """Lower-case word tokens of a caption (punctuation dropped)."""
    return re.findall(r"[a-z]+(?:-[a-z]+)?|\d+", caption.lower())


def mentioned(captions: Iterable[str]) -> Counter[str]:
    """Per object (by singular name), how many of the distinct captions name it."""
    counts: Counter[str] = Counter()
    for caption in set(captions):
        tokens = caption_tokens(caption)
        counts.update(obj.singular for obj in OBJECTS if _positions(tokens, obj))
    return counts


def typical_classes(records: Iterable[tuple[Sequence[str], str | None]]) -> dict[str, set[str]]:
    """Object -> the scene classes in which at least TYPICAL_SHARE of images name it."""
    per_class: Counter[str] = Counter()
    named: Counter[tuple[str, str]] = Counter()
    for captions, label in records:
        if not label:
            continue
        per_class[label] += 1
        named.update((obj, label) for obj in mentioned(captions))
    out: dict[str, set[str]] = {}
    for (obj, label), n in named.items():
        if n >= TYPICAL_SHARE * per_class[label]:
            out.setdefault(obj, set()).add(label)
    return out


def questions_for(key: str, captions: Sequence[str], label: str | None,
                  typical: dict[str, set[str]], labels: Sequence[str]) -> list[Question]:
    """Every grounded question of one image, in a fixed order; ``key`` seeds the choices."""
    rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))
    out: list[Question] = []
    if label:
        out.extend(_scene_questions(label, labels, rng))
    out.extend(_presence_questions(captions, label, typical, rng))
    out.extend(_attribute_questions(captions, "count"))
    out.extend(_attribute_questions(captions, "colour"))
    return out


def _scene_questions(label: str, labels: Sequence[str], rng: random.Random) -> list[Question]:
    name = humanize_label(label)
    asked = label if rng.random() < 0.5 else rng.choice([x for x in labels if x != label] or
                                                          [label])
    asked_name = humanize_label(asked)
    yes = asked == label
    answer = f"{'Yes' if yes else 'No'}, this is {with_article(name)}."
    return [Question("scene", SCENE_QUESTION, scene_answer(label), label),
            Question("scene_yes_no", f"Is this {with_article(asked_name)}?", answer,
                     "yes" if yes else "no")]


def _presence_questions(captions: Sequence[str], label: str | None,
                        typical: dict[str, set[str]], rng: random.Random) -> list[Question]:
    counts = mentioned(captions)
    need = min(2, len(set(captions)))
    present = [o for o in OBJECTS if counts[o.singular] >= need]
    absent = [o for o in OBJECTS if counts[o.singular] == 0 and typical.get(o.singular)
              and label not in typical[o.singular]]
    out = []
    if present:
        out.append(_presence(rng.choice(present), True))
    if absent:
        out.append(_presence(rng.choice(absent), False))
    return out


def _presence(obj: SceneObject, yes: bool) -> Question:
    text = f"Is there a {obj.singular}?" if obj.mass else f"Are there any {obj.plural}?"
    return Question("presence", text, "Yes." if yes else "No.", "yes" if yes else "no")


def _attribute_questions(captions: Sequence[str], kind: Literal["count", "colour"]
                         ) -> list[Question]:
    """Count or colour questions where at least two captions agree and none disagrees."""
    table = NUMBERS if kind == "count" else COLOURS
    out = []
    for obj in OBJECTS:
        values = [_attribute(caption_tokens(c), obj, table) for c in set(captions)]
        given = {v for v in values if v is not None}
        if len(given) != 1 or sum(v is not None for v in values) < 2:
            continue
        value = str(given.pop())
        if kind == "count":
            out.append(Question("count", count_question(obj), _count_answer(value), value))
        else:
            out.append(Question("colour", f"What colour are the {obj.plural}?",
                                f"{value.capitalize()}.", value))
    return out


def count_question(obj: SceneObject) -> str:
    """How a count question asks about ``obj``."""
    return f"How many {obj.plural} are there?"


def with_count_prior(per_image: Sequence[tuple[Question, ...]]) -> list[tuple[Question, ...]]:
    """``per_image`` with every count question answered by ``count_prior`` over all of them.

    Why: images that look alike do not share an RSICD caption's count
    (``scripts/count_prior.py``: an image's look-alikes tell it worse than always "two"), so
    answers taught by image are memorised, and the best guess is the prior's.
    """
    asked = [q for questions in per_image for q in questions if q.kind == "count"]
    if not asked:
        return list(per_image)
    prior = count_prior(asked)
    return [tuple(_counted(q, prior(q.text)) if q.kind == "count" else q for q in questions)
            for questions in per_image]


def count_prior(asked: Sequence[Question], least_asked: int = 3) -> Callable[[str], str]:
    """A count question's text -> the number ``asked`` (count questions, at least one) give
    its object most often; the commonest number over all of them where fewer than
    ``least_asked`` ask about the object.
    """
    overall = Counter(q.expected for q in asked).most_common(1)[0][0]
    seen: dict[str, Counter[str]] = {}
    for q in asked:
        seen.setdefault(q.text, Counter())[q.expected] += 1

    def prior(text: str) -> str:
        numbers = seen.get(text, Counter())
        return numbers.most_common(1)[0][0] if numbers.total() >= least_asked else overall
    return prior


def _counted(question: Question, value: str) -> Question:
    return replace(question, answer=_count_answer(value), expected=value)


def _count_answer(value: str) -> str:
    """A count's answer: its number word ("Two."), or its digits past the words ("12.")."""
    word = next((w for w, n in NUMBERS.items() if str(n) == value), value)
    return f"{word.capitalize()}."


def stated_number(caption: str, obj: SceneObject) -> int | None:
    """The number a caption gives ``obj`` ("two planes are parked" -> 2), read as count
    questions read it; None where it gives none.
    """
    value = _attribute(caption_tokens(caption), obj, NUMBERS)
    return value if isinstance(value, int) else None


def _attribute(tokens: list[str], obj: SceneObject, table: Mapping[str, object]
               ) -> object | None:
    """The number or colour word right before the object's name, if any."""
    for start in _positions(tokens, obj):
        if start > 0 and tokens[start - 1] in table:
            return table[tokens[start - 1]]
        if start > 0 and tokens[start - 1].isdigit() and table is NUMBERS:
            return int(tokens[start - 1])
    return None


def _positions(tokens: list[str], obj: SceneObject) -> list[int]:
    return [i for form in obj.forms for i in range(len(tokens) - len(form) + 1)
            if tuple(tokens[i:i + len(form)]) == form]


def answer_is_right(question: Question, reply: str) -> bool:
    """Whether ``reply`` gives the expected answer (see each kind's rule in the module doc)."""
    words = caption_tokens(reply)
    if question.kind in ("presence", "scene_yes_no"):
        return bool(words) and words[0] == question.expected
    if question.kind == "scene":
        return names_scene(reply, question.expected)
    if question.kind == "count":
        said = {NUMBERS.get(w, int(w) if w.isdigit() else None) for w in words} - {None}
        return said == {int(question.expected)}
    said_colours = {COLOURS[w] for w in words if w in COLOURS}
    return said_colours == {question.expected}
