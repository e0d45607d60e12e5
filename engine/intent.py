"""What a message asks for, read from its words: search the gallery, or which question about
the conversation's images it is.

The 135M LM answers reliably only the five kinds of question it was taught, in the phrasing
it was taught (``engine/training/questions.py``), and it decides between answering and
searching by emitting ``[RET]``, which it also does for "show me more like this" or never
for "describe it in more detail". So the engine reads the message first: a request for other
images searches, a question or instruction about the images in the conversation never does,
and each question goes to what can answer it from the pixels (``engine/answers.py``): the
taught question in the taught words, a crop of the part named, a comparison of search scores
across images. Rules over words, not a model: they are fast, and a miss is a visible,
testable case rather than a silent drift. Phrasings used to score them in ``capret eval``
live apart from these rules (``engine/training/question_eval.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from engine.regions import Region, find_region
from engine.tokens import RETRIEVAL_PROMPTS, humanize_label
from engine.training.questions import OBJECTS
from engine.training.scene_match import RSICD_CLASSES

Kind = Literal[
    "search",  # other images, by words: "find airports next to the sea"
    "similar",  # other images like the conversation's last one; ``subject`` may narrow it
    "more",  # the next results of the last search
    "describe",  # a description of the image
    "detail",  # a longer description: the whole and its parts
    "region",  # what one part of the image shows
    "where",  # which part of the image holds ``subject``
    "which",  # which of several images is or has ``subject``
    "compare",  # what differs between the images
    "same_kind",  # whether the images show the same kind of place
    "presence",  # is there ``subject``?
    "count",  # how many ``subject``?
    "colour",  # what colour is ``subject``?
    "scene",  # what kind of place is this?
    "scene_is",  # is this ``subject`` (a kind of place)?
    "other",  # none of these: the honest reply of what can be asked
]
SEARCHES: frozenset[Kind] = frozenset({"search", "similar", "more"})


@dataclass(frozen=True)
class Intent:
    """What a message asks: its kind and the words or part it is about."""

    kind: Kind
    subject: str = ""  # the thing or place named ("runway", "water", "airport")
    region: Region | None = None  # the part of the image named, if any
    target: int | None = None  # the image named by position: 0 first, 1 second, -1 last
    results: bool = False  # about the images the last search showed
    # "which has fewer/less ...": the lowest score wins; "like this but without ...": a
    # difference a search by likeness cannot honour
    fewer: bool = False


_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3,
             "4th": 3, "fifth": 4, "5th": 4, "sixth": 5, "6th": 5, "last": -1, "latter": -1,
             "former": 0}
_ORDINAL = re.compile(r"\b(?:the\s+)?(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|"
                      r"sixth|6th|last|latter|former)\b(?:\s+(?:one|image|picture|photo|result|"
                      r"scene|pic))?|\b(?:image|picture|photo|result|number|no\.?|#)\s*(\d)\b")
_IMAGE_NOUN = r"(?:images?|pictures?|pics?|photos?|photographs?|shots?|scenes?|examples?|ones?)"
_DEICTIC = re.compile(
    r"\b(this|that|these|those|it|its|here|there in|them|they|both|either|the two|"
    r"the (?:first|second|third|last|other|above|previous|same|current|uploaded|attached) "
    rf"{_IMAGE_NOUN}|the {_IMAGE_NOUN}|my {_IMAGE_NOUN}|in the (?:image|picture|photo))\b")
_SEARCH_VERB = re.compile(
    r"^(?:(?:please|ok|okay|now|and|also|then)[\s,]+)*(?:(?:can|could|would|will) you\s+"
    r"(?:please\s+)?|please\s+|i(?:'d| would) like (?:you )?to\s+|i want (?:you )?to\s+|"
    r"let me\s+|help me\s+)?(show(?: me| us)?|find(?! out\b)(?: me)?|search(?: for)?|"
    r"look(?:ing)? for|get(?: me)?|give me|fetch|retrieve|display|pull up|"
    r"bring(?: me)?(?: up)?|look up|dig up|do you have|have you got|"
    r"i(?:'m| am) (?:looking|searching) for|i(?:'m| am) after|i(?:'d| would) like(?: to see)?|"
    r"let(?:'s| us) see|(?:can|could|may) (?:i|we) (?:see|have|get)(?= (?:some|more|other|a few|"
    rf"{_IMAGE_NOUN})\b)|"
    r"i (?:want|need)(?: to see)?|any|are there (?:any )?(?:other |more )?"
    rf"{_IMAGE_NOUN} (?:of|with|showing))\b")
# Verbs that only ever ask for other images: a caption after them may say "this" or "it"
# ("search for it is a pond ..."; "here is a playground ..."): only "in this image", or
# "here" or "in it" closing the request, point at the conversation.
_SEARCHES_ONLY = re.compile(r"search|look|i'm|i am|i'd|i would|i want|i need|any|are there")
_IN_THE_IMAGE = re.compile(r"\b(?:in|on|of|from) (?:this|that|the|these|my) (?:image|picture|"
                           r"photo|scene|one)s?\b|\b(?:here|in (?:it|them))\s*[?.!]*$")
# Verbs that ask for images only when images are named after them ("any photos of ports?",
# "do you have pictures of farms?"): "any boats?" asks about the image at hand, "look up the
# weather" for a fact no image holds.
_ONLY_WITH_IMAGE_NOUN = ("any", "do you have", "have you got", "look up", "dig up")
# Words that ask for a description: "(this one) described", "a (longer) description".
_DESCRIBED = r"(?:described|explained|captioned|summari[sz]ed|analy[sz]ed|interpreted)"
_A_DESCRIPTION = (r"(?:a|an|the|your|some)\s+(?:\w+\s+){0,2}(?:description|caption|summary|"
                  r"analysis|explanation|interpretation)")
# A request's words that ask for a description, not for images: "give me a longer
# description", "i'd like this one described" ("find a place described as green" searches).
_TO_BE_DESCRIBED = re.compile(
    r"^\s*(?:(?:this|that|it|these|those|the \w+|my \w+)(?: one| image| picture| photo)?\s+"
    rf"{_DESCRIBED}\b|(?:me\s+)?{_A_DESCRIPTION}\b)")
# A wish ("i'd like", "i want", "i need"; not "... to see") asks, with images at hand, to be
# told a fact about them: "i want to know how many planes there are".
_WISH = re.compile(r"i(?:'d| would) like|i (?:want|need)")
_TO_BE_TOLD = re.compile(r"^\s*to (?:know|understand|find out|hear|learn)\b")
# Words that ask or tell something. A message without them, in a chat with no images yet,
# that names a kind of place or a thing the model was taught, can only name images to find:
# "airports next to the sea" ("again" or "nice one" names none).
_ASKS = re.compile(
    r"^(?:what|where|how|why|who|when|which|whose|is|are|was|were|do|does|did|can|could|"
    r"would|will|should|shall|may|might|tell|describe|explain|caption|summari[sz]e|compare|"
    r"count|zoom|point|identify|classify|please|hi|hello|hey|thanks?|ok(?:ay)?|yes|no|and|"
    r"but|so)\b|\?")
_KNOWN_WORDS = frozenset(
    {word for obj in OBJECTS for form in obj.forms for word in form}
    | {word for label in RSICD_CLASSES for word in (label, *humanize_label(label).split())})
# What a request's words may open with before the thing searched: "me some", "the gallery
# for", "an aerial photo showing".
_REQUEST_FRAME = re.compile(
    r"^\s*[:\-]?\s*(?:(?:me|us)\s+)?(?:(?:the|my|your|our)\s+(?:gallery|collection|archive|database)"
    r"\s+for\s+)?(?:(?:some|a few|more|other|any|an?|the|\d+|two|three|four|five|ten)\s+)?"
    r"(?:(?:something|anything)\s+(?:with|showing|that (?:has|shows)|containing)\s+)?"
    r"(?:(?:(?:satellite|aerial|"
    rf"overhead|drone|remote[- ]sensing|top[- ]down)\s+)?{_IMAGE_NOUN}\s+(?:of|with|showing|"
    r"shows?|that shows?|where|depicting|containing|featuring)\s+)?")
_FOR_IMAGES = re.compile(
    rf"\b{_IMAGE_NOUN}\s+(?:of|with|showing|where|that show|containing|featuring|like)\b|"
    rf"\b(?:other|more|similar|different|another|new)\s+{_IMAGE_NOUN}\b|"
    rf"\bgallery\b|\bexamples? of\b|\b(?:images|pictures|photos|pics)\s*[?.!]*$")
_LIKE = r"(?:just\s+)?(?:like|similar to|resembling)\s+(?:this|that|it|these|those|the " \
    r"(?:first|second|last) one)(?:\s+(?:one|image|picture|photo|scene)s?)?"
_SEARCH_LEAD = rf"(?:{_SEARCH_VERB.pattern.removeprefix('^')}\s+)?"
_LIKE_THIS = re.compile(
    rf"\b(?:(?:more|other|others|another|similar|some)\b.*\b{_LIKE}|similar (?:ones|images|"
    r"pictures|photos|scenes)|(?:something|anything) similar|more of (?:this|these|the same)|"
    rf"look(?:s)? (?:alike|similar))\b|^{_SEARCH_LEAD}(?:(?:places?|areas?|spots?|sites?|"
    rf"locations?|somewhere|something|anything|{_IMAGE_NOUN})\s+)?{_LIKE}\b|"
    rf"^{_SEARCH_LEAD}(?:more |some |any )?similar(?:\s+{_IMAGE_NOUN})?\s*[?.!]*$")
# "show me more", "next", "more results": after a search, its next results; after a photo,
# images like it.
_MORE_OF = r"(?:results|images|pictures|photos|of them|of those|of these)"
_MORE_RESULTS = re.compile(
    r"^(?:(?:ok|okay|now|please|and)[\s,]+)*(?:(?:show|give|get|find)(?: me)?\s+|any\s+)?"
    rf"(?:some\s+)?more(?:\s+{_MORE_OF})?"
    r"(?:\s+please)?\s*[?.!]*$|^(?:next|another|the next)(?:\s+(?:page|results|ones|few|batch))?"
    r"(?:\s+please)?\s*[?.!]*$|^(?:keep going|go on with the search|continue the search)\s*[?.!]*$|"
    rf"^(?:do you have|have you got|got|are there) (?:any |some )?more(?:\s+(?:{_MORE_OF}|"
    r"like (?:that|those|these)))?\s*[?.!]*$")
# Right after a search, "what about deserts?" asks for other images in the same way.
_WHAT_ABOUT = re.compile(r"^(?:and\s+)?(?:what|how) about\s+(.+?)\s*[?.!]*$")
_MORE_KIND = re.compile(rf"\b(?:more|other|similar|some)\s+(.+?)\s+(?:{_IMAGE_NOUN}\s+)?"
                        r"(?:like|similar to|resembling)\b")
# What may join a "like this" to the way the results should differ: "..., but with more
# water", "and greener", "only in a desert".
_REFINE_JOIN = re.compile(r"^(?:[,;:\-]|but|and|only|though|just|yet|please|ideally|(?:to|as) "
                          r"(?:this|that|it|these|those|the (?:first|second|last))(?: one| image|"
                          r" picture| photo| scene)?)\s*")
_REFINE_LEAD = re.compile(r"^(?:with|having|showing|containing|featuring|in|on|at|near|by|"
                          r"that (?:has|have|shows?)|which (?:has|have|shows?)|where)\s+")
# A difference no search by likeness can honour: a thing left out or lessened.
_REFINE_LESS = re.compile(r"^(?:without|with(?:out)? (?:no|fewer|less)|no|fewer|less|minus|"
                          r"except|not|excluding)\b")
_DETAIL = re.compile(
    r"\b(more detail(?:s|ed)?|in detail|detailed|elaborate|tell me more|say more|what else|"
    r"anything else|more about (?:it|this|that)|(?:describe|explain) (?:it|this|that) "
    r"(?:fully|more|further|better)|in depth|go on|more thorough(?:ly)?|full description|"
    r"longer description|everything you see)\b")
_DESCRIBE = re.compile(
    r"^(?:please\s+|can you\s+|could you\s+)?(?:describe|caption|summari[sz]e|explain)\b|"
    r"\bwhat(?:'s| is| do you see| can you see| does (?:it|(?:this|that|the)(?: \w+)?) show|"
    r" is shown)\s*(?:in|on)?\s*(?:this|the|that)?\s*(?:image|picture|photo|pic)?\s*(?:here)?"
    r"\s*\??$|\bwhat(?:'s| is) (?:going on|happening)\b|^(?:(?:can|could) you\s+)?tell me "
    r"(?:about (?:this|that|it|the (?:image|picture|photo|scene))|what (?:you see|this|it|is))|"
    r"^what am i looking at|^what(?:'s| is) (?:this|that|it)\s*\??$|^what do we have here|"
    # asked as a wish: "i'd like it described", "i need a caption", "to know what this is"
    rf"\b{_DESCRIBED}\b|\b{_A_DESCRIPTION}\b|"
    r"\bwhat (?:this|that|it) (?:is|shows)\s*\??$")
_COMPARE = re.compile(
    r"\b(differen\w*|differ|changed?|changes|compare\w*|contrast|in common|similarit\w*|"
    r"versus|vs\.?)\b")
_SAME = re.compile(r"\b(?:same|alike|similar)\b(?!\s+(?:to\s+)?(?:this|that))|"
                   r"\bboth\b.*\b(?:a|an)\b|^(?:are|is|do|does)\b.*\bboth\b")
_WHICH = re.compile(
    r"^(?:so\s+|and\s+)?(?:which|what)\s+(?:one|image|picture|photo|pic|result|of (?:these|them|"
    r"those|the (?:two|three|images|pictures|photos|results)))?\s*(?:of (?:these|them|those|the "
    r"\w+))?\s*(?:is|are|has|have|shows?|contains?|includes?|looks?(?: like)?|seems? to be|"
    r"depicts?|with)\b\s*(.*)$")
_SEVERAL_WORDS = re.compile(r"^(?:so\s+|and\s+)?which (?:one|image|picture|photo|of)\b|"
                            r"\b(?:between|both|the two|these|each other)\b")
_COUNT = re.compile(
    r"\bhow many\s+(.+?)(?:\s+(?:are|is|do|can|could|does|did|would|will|in|on|there|here|"
    r"you|i)\b.*)?$|\b(?:count|number of)\s+(?:the\s+)?(.+?)(?:\s+(?:in|on|here|there)\b.*)?$")
_COLOUR = re.compile(
    r"\b(?:what|which)\s+colou?rs?\s+(?:is|are|do|does|were)?\s*(?:the\s+)?(.+?)"
    r"(?:\s+(?:are|is|have|in|on|here|there)\b.*)?$|\bcolou?rs?\s+of\s+(?:the\s+)?(.+?)"
    r"(?:\s+(?:in|on|here|there)\b.*)?$|^(?:the\s+)?(.+?)\s+(?:are|is)\s+what\s+colou?r")
_SCENE = re.compile(
    r"\b(?:what|which)\s+(?:kind|type|sort)\s+of\s+(?:place|scene|area|location|site|landscape|land|"
    r"terrain|setting|image|picture|region)\b|\bwhat (?:place|scene|area) is (?:this|it)\b|"
    r"\bwhat(?:'s| is) (?:the|this) (?:scene|place|area|setting)\b|\bclassify\b|"
    r"\bwhat (?:category|class)\b|\bidentify (?:this|the|that) (?:place|scene|area|location|"
    r"image|picture|photo)\b|"
    # "is this urban or rural?", "is it a port or an airport?": answered with the kind
    r"^(?:is|was) (?:this|it|that)(?: (?:image|picture|photo|place|area|scene))? [\w ]+ or "
    r"[\w ]+?\s*\??$")
_SCENE_IS = re.compile(
    r"^(?:is|was)\s+(?:this|it|that|the \w+ (?:one|image|picture|photo))(?:\s+(?:image|"
    r"picture|photo|place|area|scene))?\s+"
    r"(?:showing\s+|of\s+|a\s+picture\s+of\s+)?(?:an?\s+|some\s+)(.+?)(?:\s+(?:scene|area|"
    r"image|picture|region))?\s*\??$|^(?:does|do)\s+(?:this|it|that)(?:\s+(?:image|picture|"
    r"photo|place))?\s+(?:(?:look like|show|depict)\s+(?:an?\s+)|looks?\s+)(.+?)"
    r"(?:\s+(?:scene|area|region))?"
    r"\s*\??$")
_PRESENCE = re.compile(
    r"\b(?:is|are)\s+there\s+(.+)$|\b(?:whether|if)\s+there\s+(?:is|are)\s+(.+)$|"
    r"\b(?:can|could|do|did)\s+(?:you|i|we|one)\s+(?:see|spot|find|detect|notice|identify|"
    r"make out|observe|locate|discern)\s+(.+)$|"
    r"^(?:i|we)\s+(?:see|spot|notice)\s+(.+)$|"
    r"\b(?:does|do|did)\s+(?:it|this|that|the (?:image|picture|photo|scene)|this (?:image|"
    r"picture|photo|scene))\s+(?:have|contain|show|include|feature|hold|depict)\s+(.+)$|"
    r"^(?:is|are)\s+(?:there\s+)?(?:an?\s+|any\s+|the\s+|some\s+)?(.+?)\s+(?:visible|present|"
    r"shown|there|in (?:it|this|the|view|sight)|on (?:the|this|it)|here|to be seen)\b.*$|"
    r"^any\s+(.+)$|^(?:search|look(?! up\b)|check|scan)\s+(?:for\s+|if there (?:is|are)\s+)?(.+)$|"
    r"^(?:an?|some)\s+(.+?)\s+(?:here|in (?:it|this|the \w+))\s*\??$")
_WHERE = re.compile(r"^(?:(?:can|could) you\s+)?point (?:out|to|at)\s+(.+)$|"
                    r"\bwhere(?:'s|\s+is|\s+are|\s+do you see|\s+can i find|\s+can you see|"
                    r"\s+exactly is|\s+exactly are)?\s+(?!is\b|are\b)(.+?)(?:\s+(?:is|are|lies|"
                    r"lie|located|sits?|can be (?:seen|found)))?\s*\??$|"
                    r"\bwhich (?:part|side|corner) (?:of the \w+ )?(?:has|holds|contains|shows|is)"
                    r"\s+(.+)$")
_TRAILING = re.compile(
    r"(?:\s+(?:in|on|at|of|within|inside)\s+(?:this|that|the|these|those|it|my|your)\b.*|"
    r"\s+(?:here|there|at all|visible|anywhere|present|around|please|to be seen|in it|"
    r"in view|in sight|in them|in either|in both)\b.*|[?.!,\s]+)$")
# What a search's words may end with that is no part of the thing searched: a request's
# politeness and punctuation. Unlike a question's subject, a search keeps its places and
# relations ("ships in the harbour", "houses around a pond"): captions are made of them.
_SEARCH_TRAILING = re.compile(
    r"(?:\s+(?:please|for me|if you can|if possible|at all|here|there)|\s+(?:in|on|from|of)\s+"
    r"(?:this|that|these|those|my|your)\s+(?:image|picture|photo|pic|scene)s?|[?.!,\s]+)$")
_LEADING = re.compile(r"^(?:(?:any|an|a|the|some|several|many|more|most|much|lots of|a lot "
                      r"of|fewer|less|least|other|there|is|are)\s+)+")


def read_intent(text: str, images: int = 0, results: int = 0) -> Intent:
    """What ``text`` asks, given how many images the conversation holds and how many the
    last reply showed (``results``: 0 when the last reply was no search).
    """
    words = _plain(text)
    if (found := _search(words, images, results)) is not None:
        return found
    about_results = results > 0 and _names_results(words, images)
    seen = results if about_results else images
    intent = _question(words, seen)
    if about_results:
        intent = Intent(intent.kind, intent.subject, intent.region, intent.target, True,
                        intent.fewer)
    return intent


def subject_words(phrase: str) -> str:
    """The thing a phrase names, without articles, quantifiers and "in this image"."""
    return _trimmed(phrase, _TRAILING)


def search_subject(phrase: str) -> str:
    """What a search asks to find: the phrase without articles, quantifiers and politeness,
    its places and relations kept.
    """
    return _trimmed(phrase, _SEARCH_TRAILING)


def _trimmed(phrase: str, trailing: re.Pattern[str]) -> str:
    """``phrase`` lowercased, ``trailing`` and ``_LEADING`` cut until neither matches."""
    previous = None
    phrase = phrase.strip().lower()
    while phrase != previous:
        previous = phrase
        phrase = trailing.sub("", phrase).strip()
        phrase = _LEADING.sub("", phrase).strip()
    return phrase


def search_request(intent: Intent, text: str) -> str:
    """What a search by words asks the model: "Show me <the subject read>", or the user's own
    ``text`` where no subject was read.
    """
    return RETRIEVAL_PROMPTS[0].format(query=intent.subject) if intent.subject else text


def _plain(text: str) -> str:
    text = text.lower().replace("’", "'").replace("\u00a0", " ")
    text = re.sub(r"\b(what|where|how|that)s\b", r"\1's", text)  # typed without apostrophe
    return " ".join(text.split())


def _search(words: str, images: int, results: int) -> Intent | None:
    """A request for other images, or None: a request names images to find and does not
    point at the ones in the conversation.
    """
    if like := _LIKE_THIS.search(words):
        return _similar(words, words[like.end():])
    if _MORE_RESULTS.match(words):
        return Intent("similar" if images and not results else "more")
    if results and (about := _WHAT_ABOUT.match(words)) and find_region(words) is None \
            and not _points_at_conversation(about.group(1)):
        return Intent("search", _searched(about.group(1)))
    at_hand = bool(images or results)
    verb = _SEARCH_VERB.search(words)
    if verb is None and not (_FOR_IMAGES.search(words) and not at_hand) \
            and (at_hand or _ASKS.search(words) or not _names_known(words)):
        return None
    rest = words[verb.end():] if verb else words
    if _about_images_at_hand(verb.group(1) if verb else None, rest, at_hand):
        return None
    subject = _searched(rest)
    return Intent("search", subject) if subject or verb is not None else None


def _searched(rest: str) -> str:
    """What the words after a request's verb ask to find, without the request's frame."""
    return search_subject(_REQUEST_FRAME.sub("", rest))


def _names_known(words: str) -> bool:
    """Whether ``words`` name a taught thing or kind of place ("airports", "a beach")."""
    return any(w in _KNOWN_WORDS or w.removesuffix("s") in _KNOWN_WORDS
               or w.removesuffix("es") in _KNOWN_WORDS for w in re.findall(r"[a-z]+", words))


def _about_images_at_hand(verb: str | None, rest: str, at_hand: bool) -> bool:
    """Whether what follows a request's ``verb`` asks about the conversation's images (or
    the results shown: ``at_hand``) rather than for other images.
    """
    named = bool(_FOR_IMAGES.search(rest))  # "images of ...": always other images
    if verb is not None and not named and (_TO_BE_DESCRIBED.match(rest) or (
            at_hand and _WISH.fullmatch(verb) and _TO_BE_TOLD.match(rest))):
        return True  # "give me a description", "i want to know how many ..."
    pointing = _IN_THE_IMAGE if verb is not None and _SEARCHES_ONLY.match(verb) else None
    if at_hand and not named and (
            pointing.search(rest) if pointing else _points_at_conversation(rest)):
        return True
    if verb in _ONLY_WITH_IMAGE_NOUN and not named:
        return True  # "any boats?" asks about the image at hand
    if re.match(r"^\s*(me\s+)?(where|which|how|what|if|whether)\b", rest):
        return True  # "show me where the river is" points into the image
    # "show me the left part"
    return find_region(rest) is not None and not named and at_hand and not pointing


def _similar(words: str, after: str) -> Intent:
    """A request for images like the conversation's, with the kind of image it names ("more
    harbours like this") and how they should differ (``after`` the "like this": "but with
    more water"): both are the search's words. A difference that leaves something out
    ("without the buildings") cannot be searched by likeness: ``fewer`` says so.
    """
    kind = _MORE_KIND.search(words)
    subject = subject_words(kind.group(1)) if kind else ""
    if re.fullmatch(rf"{_IMAGE_NOUN}|(?:of )?(?:this|these|that)", subject):
        subject = ""
    differs = after.strip()
    while (join := _REFINE_JOIN.match(differs)) and join.end():
        differs = differs[join.end():]
    if _REFINE_LESS.match(differs):  # before trimming: it cuts a leading "fewer" or "less"
        return Intent("similar", subject, fewer=True)
    differs = search_subject(differs if subject else _REFINE_LEAD.sub("", differs))
    return Intent("similar", " ".join(w for w in (subject, differs) if w))


def _points_at_conversation(rest: str) -> bool:
    return bool(_DEICTIC.search(rest) or _ORDINAL.search(rest))


def _names_results(words: str, images: int) -> bool:
    """A question about the images just shown rather than the conversation's own: it names
    one by position, speaks of "these"/"them", or there are no own images to mean.
    """
    return (not images or bool(_ORDINAL.search(words))
            or bool(re.search(r"\b(these|those|them|results?|the ones?)\b", words)))


def _question(words: str, images: int) -> Intent:
    target = _target(words)
    # Over several images, or worded so ("which one...?" with one image left in the context
    # is answered that there is only one).
    if target is None and (images >= 2 or _SEVERAL_WORDS.search(words)) \
            and (several := _several(words)) is not None:
        return several
    return _single(words, target)


def _target(words: str) -> int | None:
    match = _ORDINAL.search(words)
    if match is None:
        return None
    if match.group(2):
        return int(match.group(2)) - 1
    return _ORDINALS[match.group(1)]


def _several(words: str) -> Intent | None:
    """Questions over several images: which one, what differs, the same kind of place."""
    if _COMPARE.search(words) and not words.startswith("which"):
        return Intent("compare")
    if match := _WHICH.search(words):
        subject = match.group(1)
        fewer = bool(re.search(r"\b(fewer|less|least|smaller|no)\b", subject))
        return Intent("which", subject_words(subject), fewer=fewer)
    if _COMPARE.search(words):
        return Intent("compare")
    if _SAME.search(words):
        return Intent("same_kind")
    return None


def _single(words: str, target: int | None) -> Intent:
    """A question about one image (the last one, or the one ``target`` names)."""
    region = find_region(words)
    if (asked := _about_a_thing(words, region, target)) is not None:
        return asked
    if _DETAIL.search(words):
        return Intent("detail", target=target)
    if _SCENE.search(words):
        return Intent("scene", target=target)
    if match := _SCENE_IS.search(words):
        return Intent("scene_is", subject_words(next(g for g in match.groups() if g)),
                      region, target)
    if region is not None:
        return Intent("region", region=region, target=target)
    if _DESCRIBE.search(words) or (target is not None and _describe_one(words)):
        return Intent("describe", target=target)
    return Intent("other", target=target)


def _about_a_thing(words: str, region: Region | None, target: int | None) -> Intent | None:
    """Where, how many, what colour or whether there is something."""
    for kind, pattern in (("where", _WHERE), ("count", _COUNT), ("colour", _COLOUR)):
        if match := pattern.search(words):
            subject = subject_words(next(g for g in match.groups() if g))
            return Intent(kind, subject, region, target)  # type: ignore[arg-type]
    if (_DETAIL.search(words) or _SCENE.search(words) or _SCENE_IS.search(words)
            or not (match := _PRESENCE.search(words))):
        return None
    subject = subject_words(next(g for g in match.groups() if g))
    if subject in ("", "here", "there") or re.match(r"(in|on|at|to|of|near)\b", subject):
        return None  # "what can you see in the top right?" asks what, not whether
    return Intent("presence", subject, region, target)


def _describe_one(words: str) -> bool:
    """"the second one?", "and the first image": a bare pointer asks for its description."""
    rest = _ORDINAL.sub("", words)
    return not re.sub(r"\b(and|what about|how about|tell me about|show|the|one|please|about|"
                      r"what(?:'s| is) (?:in|on)|what do you see in)\b|"
                      r"[?.!,]", "", rest).strip()
