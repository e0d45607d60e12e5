"""Follow-up questions generated from captions: grounded, deterministic, checked fairly."""

from __future__ import annotations

from engine.training.questions import (
    OBJECTS,
    Question,
    answer_is_right,
    questions_for,
    stated_number,
    typical_classes,
    with_count_prior,
)

AIRPORT = ("two planes are parked near a white terminal .",
           "two planes stand beside the runway and some green trees .",
           "an airport with two planes and green trees .")
BEACH = ("a yellow beach is next to the blue sea .", "waves reach the yellow beach .")
PORT = ("many boats are in the port .", "some boats are docked in the port .")
RECORDS = [(AIRPORT, "airport"), (BEACH, "beach"), (PORT, "port")]
LABELS = ["airport", "beach", "port"]


def _questions(captions: tuple[str, ...], label: str, key: str = "a.jpg") -> list[Question]:
    return questions_for(key, captions, label, typical_classes(RECORDS), LABELS)


def test_presence_yes_needs_two_captions_and_no_is_typical_of_another_class() -> None:
    questions = [q for q in _questions(AIRPORT, "airport") if q.kind == "presence"]
    yes = [q for q in questions if q.answer == "Yes."]
    no = [q for q in questions if q.answer == "No."]
    assert len(yes) == 1 and yes[0].text in ("Are there any planes?", "Are there any trees?")
    # boats are typical of ports and named in none of the airport's captions
    assert len(no) == 1 and no[0].text in ("Are there any boats?", "Is there a beach?",
                                           "Is there a sea?")


def test_counts_and_colours_only_where_captions_agree() -> None:
    by_kind = {q.kind: q for q in _questions(AIRPORT, "airport")}
    assert by_kind["count"].text == "How many planes are there?"
    assert by_kind["count"].answer == "Two." and by_kind["count"].expected == "2"
    colours = [q for q in _questions(AIRPORT, "airport") if q.kind == "colour"]
    assert [(q.text, q.answer) for q in colours] == [("What colour are the trees?", "Green.")]
    disagree = ("two planes are parked .", "three planes are parked .")
    assert not [q for q in _questions(disagree, "airport") if q.kind == "count"]
    # a count past the number words is answered in digits
    lined = ("12 planes are parked in lines .", "12 planes stand by the terminal .")
    assert [(q.answer, q.expected) for q in _questions(lined, "airport") if q.kind == "count"
            ] == [("12.", "12")]


def test_scene_questions_name_the_label_and_yes_no_is_truthful() -> None:
    questions = {q.kind: q for q in _questions(BEACH, "beach")}
    assert questions["scene"].answer == "This is a beach scene."
    yes_no = questions["scene_yes_no"]
    asked_beach = yes_no.text == "Is this a beach?"
    assert yes_no.answer.startswith("Yes" if asked_beach else "No, this is a beach.")


def test_generation_is_deterministic_per_image_key() -> None:
    assert _questions(AIRPORT, "airport", "x.jpg") == _questions(AIRPORT, "airport", "x.jpg")


def test_answers_are_checked_by_kind() -> None:
    count = Question("count", "How many planes are there?", "Two.", "2")
    assert answer_is_right(count, "There are two planes.")
    assert answer_is_right(count, "2")
    assert not answer_is_right(count, "There are three planes.")
    assert not answer_is_right(count, "Two or three.")
    presence = Question("presence", "Is there a river?", "No.", "no")
    assert answer_is_right(presence, "No.") and not answer_is_right(presence, "Yes, a river.")
    colour = Question("colour", "What colour are the roofs?", "Grey.", "grey")
    assert answer_is_right(colour, "They are gray.")
    assert not answer_is_right(colour, "Red and grey.")
    scene = Question("scene", "What kind of place is this?", "This is a port scene.", "port")
    assert answer_is_right(scene, "This is a port.") and not answer_is_right(scene, "A beach.")


def test_a_caption_states_a_number_only_right_before_the_thing() -> None:
    planes = next(o for o in OBJECTS if o.plural == "planes")
    assert stated_number(AIRPORT[0], planes) == 2
    assert stated_number("12 planes are parked in lines .", planes) == 12
    assert stated_number("some planes are parked near two buildings .", planes) is None
    assert stated_number(BEACH[0], planes) is None


def test_the_count_prior_answers_by_the_objects_commonest_number_or_the_overall_one() -> None:
    def count(plural: str, n: int) -> Question:
        word = {2: "Two", 3: "Three", 5: "Five"}[n]
        return Question("count", f"How many {plural} are there?", f"{word}.", str(n))

    river = Question("presence", "Is there a river?", "Yes.", "yes")
    per_image = [(count("planes", 3),), (count("planes", 3), river), (count("planes", 2),),
                 (count("roads", 2),), (count("roads", 2),), (count("tanks", 5),)]
    answered = with_count_prior(per_image)
    assert [tuple((q.answer, q.expected) for q in qs) for qs in answered] == [
        (("Three.", "3"),), (("Three.", "3"), ("Yes.", "yes")), (("Three.", "3"),),
        # roads and tanks are asked fewer than 3 times: the commonest number over all
        (("Two.", "2"),), (("Two.", "2"),), (("Two.", "2"),)]
    assert with_count_prior([(river,), ()]) == [(river,), ()]
