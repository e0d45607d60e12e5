"""Messages the image cannot answer, answered truthfully without the model.

A 135M LM asked about tomorrow's weather writes a forecast, and asked a place's name invents
one. The pixels of an overhead image say nothing about weather to come, names, owners or
(for a plain photo) where it was taken, so such questions, and small talk, get a short true
reply here: what the bot can tell, or that it cannot. They never reach the model and never
start a gallery search. Questions about what the image shows go to the model as usual.
"""

from __future__ import annotations

import re

CAPABILITIES = (
    "I describe satellite and aerial images, answer questions about what they show, and find "
    "images: send a photo, ask a follow-up such as \"is there a river?\", or ask \"show me "
    "airports near the sea\".")

_SMALL_TALK = re.compile(
    r"^\s*(hi|hello|hey|good (morning|afternoon|evening)|thanks?( you)?|thank you|ok(ay)?|"
    r"how are you|who are you|what are you|what can you do|help)\b[\s!?.]*$", re.I)

# (pattern, reply): each names a fact that an image's pixels do not hold.
_CANNOT_TELL = (
    (re.compile(r"\b(weather|forecast|rain(ing|y)?|snow(ing)? tomorrow|temperature|sunny|"
                r"tomorrow|next week|yesterday|will it)\b", re.I),
     "I can't tell that: an image shows one moment and says nothing about weather or what "
     "comes next. I can describe what is visible in it."),
    (re.compile(r"\b(called|named|name of|who (owns|lives|built|works)|whose)\b", re.I),
     "I can't tell names or owners from an image: I only see what is visible from above, "
     "not what things are called or who they belong to."),
    (re.compile(r"\b(where (is|was) (this|it)|which (city|country|town|place)|coordinates|"
                r"latitude|longitude|what (city|country))\b", re.I),
     "I can't tell where a photo was taken from its pixels alone. A GeoTIFF with "
     "georeferencing says where it is; a plain photo does not, and I won't guess."),
    (re.compile(r"\b(what time|what year|when was (this|it) taken|what date)\b", re.I),
     "I can't tell when an image was taken from its pixels; I only see what is in it."),
)


def honest_reply(text: str) -> str | None:
    """The fixed reply for small talk or a question an image cannot answer; else None."""
    if _SMALL_TALK.match(text):
        return CAPABILITIES
    for pattern, reply in _CANNOT_TELL:
        if pattern.search(text):
            return reply
    return None
