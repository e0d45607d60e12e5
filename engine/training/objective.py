"""The RS-CapRet training objective: L = λc·Lc + λr·(L_t2i + L_i2t).

Two kinds of sequences, as in FROMAGe:
- answer sequences: a dialogue whose first user turn carries the image (a request, then the
  image) and whose last assistant answer is the target (every answer with ``dialogue_targets``
  "all"): a caption, the scene answer, or the answer to a follow-up question asked after the
  description;
- retrieval sequences: a request to find a caption's scene -> [RET]; the hidden state at
  [RET] is projected into the shared space and contrasted with the images of its batch (or,
  given an ``ImageBank``, with every train image). These are short, so a step takes more of
  them than answer sequences: more negatives.
Teaching [RET] as the answer to "show me ..." lets the chat model decide when to retrieve.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from engine.bridge import Bridge
from engine.language import LanguageModel
from engine.padding import padding_mask, right_pad
from engine.prompt import PromptLayout, assemble_embeddings, image_turn, layout_dialogue
from engine.tokens import (
    CAPTION_PROMPT,
    RETRIEVAL_PROMPTS,
    SCENE_PROMPT,
    asks_to_describe,
    scene_answer,
)
from engine.training.contrastive import bank_info_nce, info_nce
from engine.types import TextPart, Turn

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One training example: an image's features, a dialogue about it, and a caption.

    ``exchanges`` are (user text, assistant answer) pairs; the first user turn carries the
    image and the last answer is what the step teaches. ``caption`` is what a retrieval
    request for this image asks for.
    """

    features: torch.Tensor  # (D_img,)
    caption: str
    exchanges: tuple[tuple[str, str], ...]
    # The image's row in the train items (and in an ``ImageBank``), where known.
    image: int | None = None

    @staticmethod
    def captioning(features: torch.Tensor, caption: str, image: int | None = None) -> Example:
        return Example(features, caption, ((CAPTION_PROMPT, caption),), image)

    @staticmethod
    def follow_up(features: torch.Tensor, caption: str, question: str, answer: str) -> Example:
        """The description ``caption``, then ``question`` answered ``answer``."""
        return Example(features, caption, ((CAPTION_PROMPT, caption), (question, answer)))

    @staticmethod
    def scene_question(features: torch.Tensor, caption: str, label: str) -> Example:
        """The scene question, answered with the taught form (``scene_answer``)."""
        return Example(features, caption, ((SCENE_PROMPT, scene_answer(label)),))


@dataclass(frozen=True)
class ImageBank:
    """One view of every train image's features: the negatives each [RET] query is ranked
    against when ``train.retrieval_negatives`` is "train" (row i is train item i).
    """

    features: torch.Tensor  # (N, D_img), float, on the bridge's device


@dataclass(frozen=True)
class Losses:
    """One step's losses: the weighted total (backpropagated) and its two parts (logged)."""

    total: torch.Tensor
    caption: torch.Tensor
    retrieval: torch.Tensor


@dataclass(frozen=True)
class Taught:
    """A sequence and the answers in it that the loss teaches: (first position, token ids)."""

    layout: PromptLayout
    answers: tuple[tuple[int, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class Batch:
    """Padded sequences: embeddings (B, T, D), attention mask (B, T), targets (B, T) and
    which answer of the batch each target belongs to (B, T; -1 where there is none).
    """

    embeds: torch.Tensor
    mask: torch.Tensor
    targets: torch.Tensor
    answers: torch.Tensor


class Objective:
    """Builds the two sequences per example and computes the losses."""

    def __init__(self, lm: LanguageModel, bridge: Bridge, system_prompt: str | None,
                 max_caption_tokens: int, lambda_caption: float = 1.0,
                 lambda_retrieval: float = 1.0,
                 answer_weighting: Literal["token", "answer"] = "token",
                 dialogue_targets: Literal["last", "all"] = "last") -> None:
        self.lm = lm
        self.bridge = bridge
        self.system_prompt = system_prompt
        self.max_caption_tokens = max_caption_tokens
        self.lambda_caption = lambda_caption
        self.lambda_retrieval = lambda_retrieval
        self.answer_weighting = answer_weighting
        self.dialogue_targets = dialogue_targets

    def __call__(self, examples: Sequence[Example], rng: random.Random,
                 retrieval: Sequence[Example] | None = None, bank: ImageBank | None = None
                 ) -> Losses:
        """Losses of one step: ``examples`` teach answers, ``retrieval`` (default: the same
        examples) teach [RET] and the contrastive loss, ranked against ``bank`` when given
        (then every retrieval example says its ``image``).
        """
        retrieval = examples if retrieval is None else retrieval
        device = self.bridge.logit_scale.device
        requests = [self._retrieval_sequence(e, rng) for e in retrieval]
        cap_hidden, cap_targets, cap_weights = self._answers(examples)
        ret_last, ret_hidden = self._retrieval_pass(requests,
                                                    _shared_prefix([r.layout for r in requests]))
        ret_targets = torch.full((len(retrieval),), self.lm.ret_id, device=device)
        lc = self._token_loss(torch.cat([cap_hidden, ret_last]),
                              torch.cat([cap_targets, ret_targets]),
                              torch.cat([cap_weights, torch.ones(len(retrieval), device=device)]))
        queries = self.bridge.query_vectors(ret_hidden.float())
        # L_t2i + L_i2t: the sum of the two directions, twice the contrastive mean.
        lr = 2 * self._contrastive(queries, retrieval, bank)
        total = self.lambda_caption * lc + self.lambda_retrieval * lr
        return Losses(total, lc.detach(), lr.detach())

    def answer_loss(self, examples: Sequence[Example]) -> torch.Tensor:
        """The answer loss alone, no [RET] requests: the answer-tuning stage's objective."""
        return self._token_loss(*self._answers(examples))

    def _answers(self, examples: Sequence[Example]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``_caption_pass`` of the examples' answer sequences, their images as prefixes."""
        device = self.bridge.logit_scale.device
        feats = torch.stack([e.features for e in examples]).float().to(device)  # (B, D_img)
        answers = [self._answer_sequence(e) for e in examples]
        asked = torch.tensor([not asks_to_describe(e.exchanges[-1][0]) for e in examples],
                             device=device)
        return self._caption_pass(answers, self.bridge.prefix(feats, asked),
                                  _shared_prefix([a.layout for a in answers]))

    def _contrastive(self, queries: torch.Tensor, retrieval: Sequence[Example],
                     bank: ImageBank | None) -> torch.Tensor:
        device = queries.device
        images = torch.stack([e.features for e in retrieval]).float().to(device)
        keys = self.bridge.image_vectors(images)
        scale = self.bridge.logit_scale.exp().clamp(max=100.0)
        if bank is None:
            return info_nce(queries, keys, scale)
        if any(e.image is None for e in retrieval):
            raise ValueError("ranking against an image bank needs each example's image row")
        rows = torch.tensor([e.image for e in retrieval], device=device)
        bank_keys = self.bridge.image_vectors(bank.features)
        return bank_info_nce(queries, keys, bank_keys, rows, scale)

    def _caption_pass(self, sequences: list[Taught], prefixes: torch.Tensor, shared: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced answers: hidden states (N, D) where answer tokens are predicted, those
        tokens (N,) and each one's loss weight (N,).
        """
        batch = self._batch(sequences, shared, prefixes)
        hidden = self._forward(batch, shared, self._prefix_cache(sequences[0].layout, shared,
                                                                  batch))
        keep = batch.targets != IGNORE
        return hidden[keep], batch.targets[keep], self._answer_weights(batch.answers[keep])

    def _answer_weights(self, answers: torch.Tensor) -> torch.Tensor:
        """Per-token weights of the answers (``answers``: (N,) each target's answer number).

        "token": every token weighs 1, so a caption of 15 tokens outweighs "Yes." five times.
        "answer": each answer weighs the same in all, however long; the total stays the number
        of answer tokens, so the balance against the [RET] tokens does not move.
        """
        if self.answer_weighting == "token":
            return torch.ones_like(answers, dtype=torch.float)
        lengths = torch.bincount(answers).float()  # tokens of each answer
        return lengths[lengths > 0].mean() / lengths[answers]

    def _retrieval_pass(self, sequences: list[Taught], shared: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Requests then [RET]: hidden before [RET] (B, D), hidden at [RET] (B, D).

        Only [RET] depends on trained weights, so the request runs without gradients and only
        the [RET] position is forwarded with them, on the request's KV cache.
        """
        batch = self._batch(sequences, shared, None)
        cache = self._prefix_cache(sequences[0].layout, shared, batch)
        lengths = batch.mask.sum(1)  # (B,)
        rows = torch.arange(len(sequences), device=lengths.device)
        with torch.no_grad():
            before = self._forward(batch, shared, cache)[rows, lengths - 1]
        ret = self.bridge.ret_embedding.expand(len(sequences), 1, -1)  # (B, 1, D)
        n = len(sequences)
        mask = torch.cat([batch.mask.new_ones(n, shared), batch.mask, batch.mask.new_ones(n, 1)],
                         dim=1)
        at_ret, _ = self.lm.hidden(ret.to(before.dtype), attention_mask=mask, past=cache,
                                   positions=(shared + lengths).unsqueeze(1))
        return before, at_ret[:, 0]

    def _answer_sequence(self, example: Example) -> Taught:
        """The dialogue and its last answer, which is taught; with ``dialogue_targets`` "all"
        the earlier answers are taught too (each with the end-of-turn token after it).
        """
        layout = self._layout(dialogue_turns(example.exchanges))
        last = self._answer_ids(example.exchanges[-1][1]) + (min(self.lm.eos_ids),)
        answers = [(len(layout), last)]
        if self.dialogue_targets == "all":
            answers = self._earlier_answers(example, layout) + answers
        return Taught(layout.extended(last), tuple(answers))

    def _earlier_answers(self, example: Example, layout: PromptLayout
                         ) -> list[tuple[int, tuple[int, ...]]]:
        """Where each earlier answer (and its end-of-turn token) sits in ``layout``.

        Each answer starts where the dialogue laid out up to its question ends; an answer whose
        tokens are not found there (the template tokenised the boundary otherwise) is skipped.
        """
        found = []
        for i, (_, answer) in enumerate(example.exchanges[:-1]):
            start = len(self._layout(dialogue_turns(example.exchanges[:i + 1])))
            ids = self._answer_ids(answer)
            end = start + len(ids)
            if layout.ids[start:end] != ids:
                continue
            after = layout.ids[end:end + 1]
            if after and after[0] in self.lm.eos_ids:
                ids += after  # the end of the turn too, as for the last answer
            found.append((start, ids))
        return found

    def _answer_ids(self, answer: str) -> tuple[int, ...]:
        ids = self.lm.tokenizer(answer, add_special_tokens=False).input_ids
        return tuple(ids[: self.max_caption_tokens])

    def _retrieval_sequence(self, example: Example, rng: random.Random) -> Taught:
        request = rng.choice(RETRIEVAL_PROMPTS).format(query=example.caption)
        return Taught(self._layout([Turn("user", (TextPart(request),))]))

    def _layout(self, turns: Sequence[Turn]) -> PromptLayout:
        return layout_dialogue(self.lm.tokenizer, turns, self.bridge.spec.tokens_per_image,
                               self.system_prompt, add_generation_prompt=True)

    def _batch(self, sequences: list[Taught], shared: int, prefixes: torch.Tensor | None
               ) -> Batch:
        """Right-padded embeddings of each sequence after ``shared`` tokens.

        Targets: position p holds the token to predict from p (taught answer tokens only).
        """
        device = self.bridge.logit_scale.device
        rows, targets, owners = [], [], []
        number = 0  # of the answer in the batch
        for i, taught in enumerate(sequences):
            layout = taught.layout
            ids = torch.tensor(layout.ids, device=device)
            embeds = self.lm.embed_ids(ids, self.bridge.ret_embedding)
            if prefixes is not None:
                embeds = assemble_embeddings(layout, embeds, {"image": prefixes[i]})
            rows.append(embeds[shared:])
            target, owner = [IGNORE] * len(layout), [-1] * len(layout)
            for start, answer in taught.answers:
                span = slice(start - 1, start - 1 + len(answer))
                target[span] = answer
                owner[span] = [number] * len(answer)
                number += 1
            targets.append(torch.tensor(target[shared:], device=device))
            owners.append(torch.tensor(owner[shared:], device=device))
        embeds = right_pad(rows)  # (B, T, D)
        mask = padding_mask(torch.tensor([len(r) for r in rows], device=device), embeds.shape[1])
        return Batch(embeds, mask, right_pad(targets, IGNORE), right_pad(owners, -1))

    @torch.no_grad()
    def _prefix_cache(self, layout: PromptLayout, shared: int, batch: Batch) -> DynamicCache:
        """KV cache of the prefix every sequence shares (system prompt, turn opening)."""
        cache = DynamicCache(config=self.lm.model.config)
        ids = torch.tensor(layout.ids[:shared], device=batch.embeds.device)
        embeds = self.lm.embed_ids(ids, self.bridge.ret_embedding).unsqueeze(0)
        self.lm.hidden(embeds.to(batch.embeds.dtype), past=cache)
        cache.batch_repeat_interleave(batch.embeds.shape[0])
        return cache

    def _forward(self, batch: Batch, shared: int, cache: DynamicCache) -> torch.Tensor:
        """Hidden states (B, T, D) of the batch, continuing the shared prefix's cache."""
        width = batch.embeds.shape[1]
        mask = torch.cat([batch.mask.new_ones(batch.mask.shape[0], shared), batch.mask], dim=1)
        positions = torch.arange(shared, shared + width, device=mask.device).unsqueeze(0)
        hidden, _ = self.lm.hidden(batch.embeds, attention_mask=mask, past=cache,
                                   positions=positions.expand(mask.shape[0], -1))
        return hidden

    def _token_loss(self, hidden: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
                    ) -> torch.Tensor:
        """Weighted mean cross-entropy of (N, D) hidden states against (N,) next tokens; the
        logits are computed only there.
        """
        logits = self.lm.logits(hidden, self.bridge.ret_output_row).float()
        losses = F.cross_entropy(logits, labels, reduction="none")
        return (losses * weights).sum() / weights.sum()


def dialogue_turns(exchanges: Sequence[tuple[str, str]], image: str = "image") -> list[Turn]:
    """The turns up to the last question: the first carries the image, answers in between."""
    turns = [image_turn(exchanges[0][0], image)]
    for (_, answer), (question, _) in zip(exchanges, exchanges[1:], strict=False):
        turns += [Turn("assistant", (TextPart(answer),)), Turn("user", (TextPart(question),))]
    return turns


def _shared_prefix(layouts: Sequence[PromptLayout]) -> int:
    """Length of the token prefix all layouts share, stopping before any image slot."""
    first = layouts[0]
    limit = min(len(layout) for layout in layouts) - 1
    for layout in layouts:
        if layout.image_slots:
            limit = min(limit, layout.image_slots[0][0])
    shared = 0
    while shared < limit and all(layout.ids[shared] == first.ids[shared] for layout in layouts):
        shared += 1
    return shared

