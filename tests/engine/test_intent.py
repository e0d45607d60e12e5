"""The rules that read what a message asks (engine/intent.py), on phrasings of their own: the
evaluation's phrasings (engine/training/question_eval.py) are kept apart from these.
"""

from __future__ import annotations

import pytest

from engine.intent import SEARCHES, Intent, read_intent, search_request
from engine.regions import REGIONS, find_region
from engine.tokens import RETRIEVAL_PROMPTS
from engine.training.evaluate import _as_users_ask


@pytest.mark.parametrize(("text", "images", "kind", "subject"), [
    ("find airports next to the sea", 0, "search", "airports next to the sea"),
    ("find airports next to the sea", 1, "search", "airports next to the sea"),
    ("Please show me a beach with many boats", 2, "search", "beach with many boats"),
    ("I'm searching for dense residential areas", 1, "search", "dense residential areas"),
    ("show me more harbours like this", 1, "similar", "harbours"),
    ("more images similar to this one please", 1, "similar", ""),
    ("Is there a runway?", 1, "presence", "runway"),
    ("do you see any ships here?", 1, "presence", "ships"),
    ("does the photo have a bridge", 1, "presence", "bridge"),
    ("Any swimming pools?", 1, "presence", "swimming pools"),
    ("how many tennis courts are in it", 1, "count", "tennis courts"),
    ("which colour are the roofs?", 1, "colour", "roofs"),
    ("where's the stadium?", 1, "where", "stadium"),
    ("describe it in more detail", 1, "detail", ""),
    ("tell me more", 1, "detail", ""),
    ("what is in this picture?", 1, "describe", ""),
    ("what type of area is this?", 1, "scene", ""),
    ("is it an airport?", 1, "scene_is", "airport"),
    ("which one is the stadium?", 2, "which", "stadium"),
    ("what's the difference between them?", 2, "compare", ""),
    ("are both the same sort of place?", 2, "same_kind", ""),
    ("what's your favourite colour?", 1, "other", ""),
])
def test_reads_the_kind_and_the_thing(text: str, images: int, kind: str, subject: str) -> None:
    intent = read_intent(text, images)
    assert (intent.kind, intent.subject) == (kind, subject)


@pytest.mark.parametrize(("text", "subject"), [
    ("show me places like this one but with more water", "water"),
    ("anything like this, only greener?", "greener"),
    ("something similar to this but with ships", "ships"),
    ("similar photos with a river please", "river"),
    ("more stadiums like that one and near the sea", "stadiums near the sea"),
    ("Find more like this", ""),
])
def test_like_this_but_searches_by_the_photo_and_the_difference(text: str, subject: str) -> None:
    assert read_intent(text, 1) == Intent("similar", subject)


@pytest.mark.parametrize("text", [
    "like this one but without the buildings", "more ports like this with no ships",
    "show me similar scenes, but fewer trees"])
def test_a_difference_that_leaves_something_out_is_not_searched_for(text: str) -> None:
    intent = read_intent(text, 1)
    assert intent.kind == "similar" and intent.fewer
    assert not {"buildings", "ships", "trees"} & set(intent.subject.split())


@pytest.mark.parametrize("text", ["is it like this?", "what does it look like?",
                                  "is the left part like the right one?"])
def test_likeness_questions_about_the_photo_never_search(text: str) -> None:
    assert read_intent(text, 1).kind not in SEARCHES


@pytest.mark.parametrize("text", [
    "show me where the river is", "show me the left part", "can you find any boats here?",
    "describe the second image", "show me what is in the middle", "what is this?"])
def test_questions_about_the_conversations_images_never_search(text: str) -> None:
    assert read_intent(text, images=2).kind not in SEARCHES


@pytest.mark.parametrize(("text", "region"), [
    ("what is on the left side?", "left"), ("and in the upper right corner?", "top right"),
    ("what's at the bottom-left", "bottom left"), ("what is in the centre", "middle"),
    ("anything on the eastern edge?", "right")])
def test_parts_are_named(text: str, region: str) -> None:
    assert find_region(text) == REGIONS[region]
    assert read_intent(text, 1).region == REGIONS[region]


def test_results_questions_point_at_the_images_just_shown() -> None:
    described = read_intent("describe the second one", images=1, results=4)
    assert (described.kind, described.target, described.results) == ("describe", 1, True)
    which = read_intent("which of these is a port?", images=1, results=4)
    assert (which.kind, which.subject, which.results) == ("which", "port", True)
    own = read_intent("is there a river?", images=1, results=4)
    assert not own.results, "a question that names no result is about the chat's own image"


def test_fewer_asks_for_the_lowest_score() -> None:
    assert read_intent("which has fewer trees?", 2).fewer
    assert not read_intent("which has more trees?", 2).fewer


def test_a_comparison_with_one_image_left_is_still_read_as_one() -> None:
    # The context keeps the last few turns: "which one...?" may find one image there, and
    # is answered that there is only one rather than as something else.
    assert read_intent("which image has more water?", images=1).kind == "which"
    assert read_intent("what changed between the two?", images=1).kind == "compare"
    assert read_intent("is there a river?", images=1).kind == "presence"


@pytest.mark.parametrize(("text", "subject"), [
    ("show me ships in the harbour, please!", "ships in the harbour"),
    ("search for a church in the middle of two roads", "church in the middle of two roads"),
    ("find pictures of houses around a pond for me", "houses around a pond"),
    ("I want to see trees here and there along a river", "trees here and there along a river"),
    ("get me photos of a stadium in the city from this picture", "stadium in the city"),
    ("could you dig up satellite photos of a port with cranes?", "port with cranes"),
    ("search the archive for an overhead shot showing a dam", "dam"),
    ("show me satellite dishes", "satellite dishes"),  # no picture named: the words are kept
])
def test_a_search_keeps_the_places_and_relations_it_names(text: str, subject: str) -> None:
    # A question's subject drops "in the harbour"; a search's words are captions' words.
    assert read_intent(text, images=0) == Intent("search", subject)


@pytest.mark.parametrize(("text", "kind"), [
    ("search for it is a pond surrounded by meadow", "search"),  # a caption may say "it"
    ("look for a harbour where this river meets the sea", "search"),
    ("search for boats in this image", "presence"),
    ("look for a river here", "presence"),
    ("what can you see in the bottom left?", "region"),
])
def test_search_verbs_point_at_the_image_only_by_saying_so(text: str, kind: str) -> None:
    assert read_intent(text, images=1).kind == kind


@pytest.mark.parametrize("text", [
    "look for here is a playground beside a lawn", "I'd like to see a pool with a slide in it "
    "next to tennis courts", "search for a church in the middle of two roads",
    "find me stadium pictures"])
def test_a_caption_asked_for_may_say_here_or_in_it(text: str) -> None:
    assert read_intent(text, images=1).kind == "search"


@pytest.mark.parametrize(("text", "kind", "subject"), [
    ("I'd like this one described", "describe", ""),
    ("i would like that photo summarised please", "describe", ""),
    ("I need a caption for it", "describe", ""),
    ("i want a more detailed description", "detail", ""),
    ("I'd like to know what it shows", "describe", ""),
    ("i want to find out how many tanks there are", "count", "tanks"),
    ("I would like to know whether there is a bridge", "presence", "bridge"),
    ("i'd like to understand what colour the pitch is", "colour", "pitch"),
])
def test_a_wish_about_the_image_at_hand_is_a_question(text: str, kind: str,
                                                      subject: str) -> None:
    assert (read_intent(text, images=1).kind, read_intent(text, images=1).subject) == \
        (kind, subject)


@pytest.mark.parametrize(("text", "kind", "subject"), [
    ("what's going on in the photo", "describe", ""),
    ("tell me about the picture", "describe", ""),
    ("could you explain that image?", "describe", ""),
    ("what does that photo show", "describe", ""),
    ("whats happening", "describe", ""), ("what can you see here?", "describe", ""),
    ("give me a short caption", "describe", ""), ("which type of place is it", "scene", ""),
    ("identify the location", "scene", ""), ("is it farmland or desert?", "scene", ""),
    ("does this look industrial", "scene_is", "industrial"),
    ("could you point at the bridge", "where", "bridge"), ("how about the top?", "region", ""),
    ("and the right.", "region", ""), ("show similar", "similar", ""),
    ("find similar photos", "similar", ""),
])
def test_questions_in_everyday_words(text: str, kind: str, subject: str) -> None:
    intent = read_intent(text, images=1)
    assert (intent.kind, intent.subject) == (kind, subject)


@pytest.mark.parametrize(("text", "subject"), [
    ("bridges over a river", "bridges over a river"), ("ports", "ports"),
    ("a church next to a square", "church next to a square"), ("search: stadium", "stadium")])
def test_a_bare_phrase_in_an_empty_chat_is_a_search(text: str, subject: str) -> None:
    assert read_intent(text, images=0) == Intent("search", subject)


@pytest.mark.parametrize(("text", "images"), [
    ("bridges over a river", 1), ("nice", 0), ("again", 0), ("wow ok", 0),
    ("is there a river?", 0)])
def test_a_phrase_that_names_nothing_known_or_follows_a_photo_is_no_search(
        text: str, images: int) -> None:
    assert read_intent(text, images=images).kind not in SEARCHES


@pytest.mark.parametrize(("text", "subject"), [
    ("i'd like pictures of a marina", "marina"), ("I need beaches with white sand",
                                                   "beaches with white sand"),
    ("i want photos of farmland described as green", "farmland described as green")])
def test_a_wish_for_images_still_searches(text: str, subject: str) -> None:
    assert read_intent(text, images=1) == Intent("search", subject)


@pytest.mark.parametrize("text", [
    "do you have pictures of vineyards?", "have you got any photos of oil tanks",
    "can you look up images of a marina"])
def test_asking_whether_images_exist_is_a_search_even_after_a_photo(text: str) -> None:
    assert read_intent(text, images=1).kind == "search"


@pytest.mark.parametrize("text", ["look up the weather there", "do you have a map of it?",
                                  "can you dig up who owns this land"])
def test_those_verbs_without_images_named_ask_no_search(text: str) -> None:
    assert read_intent(text, images=1).kind != "search"
    assert read_intent(text, images=0).kind != "search"


def test_a_search_asks_the_model_for_its_subject_or_the_users_words() -> None:
    assert search_request(Intent("search", "ships in the harbour"), "find ships in the "
                          "harbour") == RETRIEVAL_PROMPTS[0].format(query="ships in the harbour")
    assert search_request(Intent("search", ""), "find stuff") == "find stuff"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_evaluations_requests_keep_every_word_of_the_reference(seed: int) -> None:
    # `capret eval --search --as-asked`: held-out phrasings, read by the rules as the bot
    # reads a message; the request the model gets still names the whole reference.
    asked = _as_users_ask(seed)
    for reference, words in (("a church in the middle of two roads .",
                              "church in the middle of two roads"),
                             ("green trees around a pond", "green trees around a pond"),
                             ("an airport next to the sea with a long runway",
                              "airport next to the sea with a long runway")):
        assert asked(reference) == RETRIEVAL_PROMPTS[0].format(query=words)


@pytest.mark.parametrize(("text", "images", "results", "kind"), [
    ("give me more", 0, 4, "more"), ("next page please", 0, 4, "more"),
    ("more of those", 1, 4, "more"), ("some more?", 1, 0, "similar"),
    ("more please", 0, 0, "more")])
def test_more_continues_a_search_or_finds_more_like_the_photo(
        text: str, images: int, results: int, kind: str) -> None:
    assert read_intent(text, images, results) == Intent(kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "kind", "subject"), [
    ("are both of these residential", "same_kind", ""),
    ("which one looks greener", "which", "greener"),
    ("what is on the second one", "describe", "")])
def test_questions_over_two_images_in_other_words(text: str, kind: str, subject: str) -> None:
    intent = read_intent(text, images=2)
    assert (intent.kind, intent.subject) == (kind, subject)


@pytest.mark.parametrize(("text", "subject"), [
    ("could we see some marinas", "marinas"), ("i am after photos of quarries", "quarries"),
    ("let us see a few vineyards", "vineyards"), ("show me 3 pictures of dams", "dams"),
    ("find anything showing a lighthouse", "lighthouse")])
def test_requests_in_other_words_search_even_after_a_photo(text: str, subject: str) -> None:
    assert read_intent(text, images=1) == Intent("search", subject)


def test_what_about_after_a_search_asks_for_other_images_the_same_way() -> None:
    assert read_intent("and what about golf courses?", 1, results=4) == \
        Intent("search", "golf courses")
    assert read_intent("what about the third one", 1, results=4).kind == "describe"
    assert read_intent("how about the bottom?", 1, results=4).kind == "region"
    assert read_intent("what about golf courses?", 1).kind not in SEARCHES  # no search shown


def test_whether_a_thing_is_on_one_side_is_asked_of_that_side() -> None:
    intent = read_intent("is the pond on the right?", images=1)
    assert (intent.kind, intent.subject, intent.region) == ("presence", "pond", REGIONS["right"])
