"""A stage after the joint training: the bridge's answer maps, tuned on answers alone.

The joint training (``train.py``) spends its loss mostly on descriptions and [RET], weighed by
token: a scene answer or a "Yes." is a few tokens against a description's fifteen, and 300
steps show each image about once. So the answers the chat gives after a description are its
weakest part. Tuning the prefix maps on answers fixes them but makes each class's descriptions
more alike (distinct descriptions fell from 52% to 44% of images when the one set of maps was
tuned). So this stage gives the bridge a second set of prefix maps, the answer maps
(``Bridge.add_answer_maps``), starting as a copy of the description maps, and tunes only
those, on scene questions and follow-up dialogues, each answer weighing the same however
long: instruction tuning after alignment, as LLaVA does, with the method's constraint kept
(frozen encoder and LM, linear maps). A request to describe keeps the description maps, so
descriptions stay exactly as they were; every other turn with images uses the answer maps.

The [RET] row and the retrieval maps are untouched too, so retrieval, and the [RET] states the
retrieval refit caches, stay exactly as they were: the two stages run in either order. The
result can keep only a share of the tuning (``kept_share``): the answer maps interpolated
between the description maps and the tuned ones, in weight space.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from engine.bridge import Bridge
from engine.config import EngineConfig
from engine.language import LanguageModel
from engine.tokens import RET_TOKEN, RETRIEVAL_PROMPTS
from engine.training.config import AnswerTuningConfig, TrainConfig
from engine.training.map_tuning import tune_maps
from engine.training.objective import Example, Objective
from engine.training.questions import with_count_prior
from engine.training.train import RARE_KINDS, TrainItem, dialogue_example, image_view


def tuning_examples(items: Sequence[TrainItem], config: AnswerTuningConfig, seed: int,
                    epoch: int) -> list[Example]:
    """This pass's examples, shuffled by (seed, epoch): per image the scene question or a
    follow-up dialogue, drawn by the config's shares (the other kind where the image lacks a
    label or questions; neither, no example), and ``rare_repeats`` more dialogues ending in
    each image's rare question (a count or a colour: few images have one). Count questions
    are answered as ``config.count_answers`` says.
    """
    if config.count_answers == "prior":
        items = _with_count_prior(items)
    rng = random.Random(seed * 1000 + epoch + 700)
    examples = []
    for item in items:
        scene = rng.random() < config.scene_share / (config.scene_share + config.dialogue_share)
        if item.label and (scene or not item.questions):
            examples.append(Example.scene_question(image_view(item, rng), item.captions[0],
                                                   item.label))
        elif item.questions:
            examples.append(dialogue_example(item, rng))
        if config.retrieval_share and rng.random() < config.retrieval_share:
            examples.append(_search_after_photo(item, rng.choice(items), rng))
        rare = [q for q in item.questions if q.kind in RARE_KINDS]
        for _ in range(config.rare_repeats if rare else 0):
            caption = rng.choice(item.captions)
            question = rng.choice(rare)
            examples.append(Example.follow_up(image_view(item, rng), caption, question.text,
                                              question.answer))
    rng.shuffle(examples)
    return examples


def _search_after_photo(item: TrainItem, wanted: TrainItem, rng: random.Random) -> Example:
    """``item`` described, then a request for images like ``wanted``: answered with [RET],
    so a photo in the conversation does not keep the model from searching.
    """
    caption = rng.choice(item.captions)
    request = rng.choice(RETRIEVAL_PROMPTS).format(query=rng.choice(wanted.captions))
    return Example.follow_up(image_view(item, rng), caption, request, RET_TOKEN)


def tune_answers(items: Sequence[TrainItem], lm: LanguageModel, bridge: Bridge,
                 engine_config: EngineConfig, config: TrainConfig, out_dir: Path,
                 max_steps: int | None = None) -> list[float]:
    """Tune ``bridge``'s answer maps in place (made from its description maps if it has
    none); returns the loss per step. Resumes from ``out_dir``; ``max_steps`` stops early
    without changing the schedule.
    """
    tuning = config.answer_tuning
    torch.manual_seed(config.seed)
    objective = Objective(lm, bridge, engine_config.language.system_prompt,
                          config.max_caption_tokens, answer_weighting=tuning.answer_weighting)
    before = [param.detach().clone() for param in bridge.describe_maps.parameters()]
    trained = list((bridge.answer_maps or bridge.add_answer_maps()).parameters())
    losses = tune_maps(trained, objective, lm, bridge,
                       lambda epoch: tuning_examples(items, tuning, config.seed, epoch),
                       len(items), tuning, config.autocast_bf16, out_dir, max_steps,
                       "tune answers")
    _interpolate(trained, before, tuning.kept_share)
    return losses


def _with_count_prior(items: Sequence[TrainItem]) -> list[TrainItem]:
    questions = with_count_prior([item.questions for item in items])
    return [dataclasses.replace(item, questions=q) for item, q in zip(items, questions,
                                                                       strict=True)]


@torch.no_grad()
def _interpolate(params: Sequence[nn.Parameter], before: Sequence[torch.Tensor], kept: float
                 ) -> None:
    """Each parameter set to (1 - kept)·before + kept·now."""
    for param, start in zip(params, before, strict=True):
        param.lerp_(start.to(param.device), 1.0 - kept)
