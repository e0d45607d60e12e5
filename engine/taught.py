"""The questions the model was taught, in the words it was taught, for any words people use.

The bridge's answer maps learned five kinds of question in one phrasing each
(``engine/training/questions.py``): "What kind of place is this?", "Is this an airport?",
"Is there a river?" / "Are there any boats?", "How many planes are there?", "What colour are
the roofs?". A person asks "can you spot any ships here?"; ``engine/intent.py`` reads the kind
and the thing, and this module puts them back into the taught words, so the model answers
the question it knows.
"""

from __future__ import annotations

import re

from engine.intent import Intent
from engine.tokens import humanize_label, with_article
from engine.training.questions import OBJECTS, SCENE_QUESTION, SceneObject
from engine.training.scene_match import RSICD_CLASSES

# Words people use for a class that its name does not contain.
_CLASS_WORDS = {
    "harbour": "port", "harbor": "port", "seaport": "port", "marina": "port",
    "airfield": "airport", "aerodrome": "airport", "train station": "railwaystation",
    "station": "railwaystation", "parking lot": "parking", "car park": "parking",
    "factory": "industrial", "plant": "industrial", "tanks": "storagetanks",
    "oil tanks": "storagetanks", "downtown": "center", "city centre": "center",
    "city center": "center", "shops": "commercial", "shopping area": "commercial",
    "farm": "farmland", "fields": "farmland", "cropland": "farmland", "woods": "forest",
    "woodland": "forest", "grassland": "meadow", "lake": "pond", "sea": "beach",
    "coast": "beach", "shore": "beach", "sand": "desert", "dunes": "desert",
    "hills": "mountain", "mountains": "mountain", "playing fields": "playfields",
    "sports field": "playfields", "baseball": "baseballfield", "ballpark": "baseballfield",
    "arena": "stadium", "hotel": "resort", "campus": "school", "plaza": "square",
}


def taught_object(subject: str) -> SceneObject | None:
    """The taught object ``subject`` names ("ships" -> boat), if any: its last words must be
    one of the object's forms.
    """
    words = tuple(re.findall(r"[a-z]+", subject.lower()))
    for obj in OBJECTS:
        if any(words[-len(form):] == form for form in obj.forms if len(form) <= len(words)):
            return obj
    return None


def scene_classes(subject: str) -> list[str]:
    """The scene classes ``subject`` names: "airport" -> [airport]; "residential area" ->
    the three residential classes; "harbour" -> [port]; a thing that is no class -> [].
    """
    text = " ".join(re.findall(r"[a-z]+", subject.lower()))
    text = re.sub(r"\s*\b(area|scene|place|region|zone|district)s?$", "", text)
    if text in _CLASS_WORDS:
        return [_CLASS_WORDS[text]]
    found = [c for c in RSICD_CLASSES
             if text in (c, humanize_label(c), humanize_label(c).rstrip("s"))]
    return found or [c for c in RSICD_CLASSES if text and text in humanize_label(c).split()]


def taught_question(intent: Intent) -> str:
    """``intent`` (presence, count, colour, scene or scene_is) in the taught words."""
    if intent.kind == "scene":
        return SCENE_QUESTION
    if intent.kind == "scene_is":
        classes = scene_classes(intent.subject)
        return f"Is this {with_article(humanize_label(classes[0]) if classes else intent.subject)}?"
    obj = taught_object(intent.subject)
    singular, plural = (obj.singular, obj.plural) if obj else (intent.subject, intent.subject)
    if intent.kind == "count":
        return f"How many {plural} are there?"
    if intent.kind == "colour":
        return f"What colour are the {plural}?"
    if obj is not None and obj.mass:
        return f"Is there a {singular}?"
    return f"Are there any {plural}?"


def scene_name(reply: str) -> str:
    """The kind of place a scene answer names: "This is an airport scene." -> "airport"."""
    text = reply.strip().rstrip(".").lower()
    text = re.sub(r"^(yes|no)?,?\s*(this|it) (is|looks like) (an?\s+)?", "", text)
    return re.sub(r"\s+scene$", "", text).strip() or reply.strip()
