"""Special tokens and fixed prompt texts shared by training and inference.

Keeping them in one place means the trained bridge and the chat see the same layout: FROMAGe
set up [RET] in two files and they drifted.
"""

from __future__ import annotations

from collections.abc import Sequence

RET_TOKEN = "[RET]"
# Stands for an image's k prefix vectors inside templated text; never reaches the tokenizer.
IMAGE_PLACEHOLDER = "\x00<image>\x00"

# The system message every dialogue starts with, in training and in the chat alike.
SYSTEM_PROMPT = ("You are a remote sensing assistant. Say only what the image shows; "
                 "when the image cannot tell, say so.")
CAPTION_PROMPT = "Describe this image."
CAPTIONS_PROMPT = "Describe these images."
SCENE_PROMPT = "What kind of scene is this?"
# Requests that teach the model to answer with [RET]; {query} is a caption.
RETRIEVAL_PROMPTS = (
    "Show me {query}",
    "Find images of {query}",
    "I am looking for a picture where {query}",
    "Search for: {query}",
)


# Opens the line of neighbour captions a description request may carry (``with_neighbours``).
NEIGHBOURS_INTRO = "Images like this one are described as:"


def asks_to_describe(text: str) -> bool:
    """``text`` is the request to describe (any case, with or without its full stop, with or
    without neighbour captions before it): what the bridge's description maps serve; any other
    request is answered with its answer maps.
    """
    return _plain(without_neighbours(text)) in {_plain(CAPTION_PROMPT), _plain(CAPTIONS_PROMPT)}


def with_neighbours(request: str, captions: Sequence[str]) -> str:
    """``request`` after a line of the captions of an image's nearest train images: the
    description prompt of a bridge tuned with them (``engine/neighbours.py``).
    """
    if not captions:
        return request
    said = "; ".join(" ".join(c.split()).rstrip(" .") for c in captions)  # one line
    return f"{NEIGHBOURS_INTRO} {said}.\n{request}"


def without_neighbours(text: str) -> str:
    """The request of a prompt made by ``with_neighbours`` (any other text as it is)."""
    if text.startswith(NEIGHBOURS_INTRO) and "\n" in text:
        return text.rsplit("\n", 1)[1]
    return text


def _plain(text: str) -> str:
    return " ".join(text.lower().rstrip(" .!").split())


def caption_prompt(images: int) -> str:
    """The request a turn of ``images`` images without text stands for."""
    return CAPTION_PROMPT if images == 1 else CAPTIONS_PROMPT


def scene_answer(label: str) -> str:
    """The answer taught for the scene question: 'denseresidential' -> 'dense residential'."""
    return f"This is {with_article(humanize_label(label))} scene."


def with_article(words: str) -> str:
    """'airport' -> 'an airport', 'beach' -> 'a beach'."""
    return f"{'an' if words[:1] in 'aeiou' else 'a'} {words}"


def humanize_label(label: str) -> str:
    """Dataset labels are run together ('denseresidential', 'bareland'); spell them out."""
    return _LABEL_WORDS.get(label, label.replace("_", " "))


_LABEL_WORDS = {
    "bareland": "bare land",
    "baseballfield": "baseball field",
    "denseresidential": "dense residential",
    "mediumresidential": "medium residential",
    "sparseresidential": "sparse residential",
    "railwaystation": "railway station",
    "storagetanks": "storage tanks",
    "playfields": "playfields",
}
