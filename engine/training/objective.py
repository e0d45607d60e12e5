"""The RS-CapRet training objective: L = λc·Lc + λr·(L_t2i + L_i2t).

Each training example (image features, one caption) becomes two sequences, as in FROMAGe:
- a captioning sequence: [image] + a request -> the caption (or the scene answer), then EOS;
- a retrieval sequence: a request to find the caption's scene -> [RET]; the hidden state at
  [RET] is projected into the shared space and contrasted with the batch's image vectors.
Teaching [RET] as the answer to "show me ..." lets the chat model decide when to retrieve.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.bridge import Bridge
from engine.language import LanguageModel
from engine.prompt import PromptLayout, assemble_embeddings, layout_dialogue
from engine.tokens import CAPTION_PROMPT, RETRIEVAL_PROMPTS, SCENE_PROMPT, scene_answer
from engine.types import ImagePart, TextPart, Turn

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One training example: an image's features and a caption (and its scene label)."""

    features: torch.Tensor  # (D_img,)
    caption: str
    label: str | None = None
    scene_question: bool = False  # teach "what kind of scene is this?" instead of the caption


@dataclass(frozen=True)
class Losses:
    total: torch.Tensor
    caption: torch.Tensor
    retrieval: torch.Tensor


@dataclass(frozen=True)
class Batch:
    """Padded sequences: embeddings (B, T, D), attention mask (B, T), targets (B, T)."""

    embeds: torch.Tensor
    mask: torch.Tensor
    targets: torch.Tensor


class Objective:
    """Builds the two sequences per example and computes the losses."""

    def __init__(self, lm: LanguageModel, bridge: Bridge, system_prompt: str | None,
                 max_caption_tokens: int, lambda_caption: float = 1.0,
                 lambda_retrieval: float = 1.0) -> None:
        self.lm = lm
        self.bridge = bridge
        self.system_prompt = system_prompt
        self.max_caption_tokens = max_caption_tokens
        self.lambda_caption = lambda_caption
        self.lambda_retrieval = lambda_retrieval

    def __call__(self, examples: Sequence[Example], rng: random.Random) -> Losses:
        feats = torch.stack([e.features for e in examples]).float()  # (B, D_img)
        feats = feats.to(self.bridge.logit_scale.device)
        prefixes = self.bridge.prefix(feats)  # (B, k, D)
        cap = self._batch([self._caption_sequence(e) for e in examples], prefixes)
        ret = self._batch([self._retrieval_sequence(e, rng) for e in examples], None)
        cap_hidden = self._hidden(cap)
        ret_hidden = self._hidden(ret)
        lc = self._token_loss([cap_hidden, ret_hidden], [cap.targets, ret.targets])
        last = ret.mask.sum(1) - 1  # position of the [RET] input in each row
        queries = self.bridge.query_vectors(ret_hidden[torch.arange(len(examples)), last].float())
        lr = contrastive_loss(queries, self.bridge.image_vectors(feats), self.bridge.logit_scale)
        total = self.lambda_caption * lc + self.lambda_retrieval * lr
        return Losses(total, lc.detach(), lr.detach())

    def _caption_sequence(self, example: Example) -> tuple[PromptLayout, list[int]]:
        prompt = SCENE_PROMPT if example.scene_question else CAPTION_PROMPT
        answer = scene_answer(example.label or "") if example.scene_question else example.caption
        turn = Turn("user", (ImagePart("image"), TextPart(prompt)))
        layout = self._layout(turn)
        target = self.lm.tokenizer(answer, add_special_tokens=False).input_ids
        eos = min(self.lm.eos_ids)
        return layout, list(target[: self.max_caption_tokens]) + [eos]

    def _retrieval_sequence(self, example: Example, rng: random.Random
                            ) -> tuple[PromptLayout, list[int]]:
        request = rng.choice(RETRIEVAL_PROMPTS).format(query=example.caption)
        layout = self._layout(Turn("user", (TextPart(request),)))
        return layout, [self.lm.ret_id]

    def _layout(self, turn: Turn) -> PromptLayout:
        return layout_dialogue(self.lm.tokenizer, [turn], self.bridge.spec.prefix_tokens,
                               self.system_prompt, add_generation_prompt=True)

    def _batch(self, sequences: list[tuple[PromptLayout, list[int]]],
               prefixes: torch.Tensor | None) -> Batch:
        """Teacher forcing: inputs = prompt + answer; targets predict each answer token."""
        device = self.bridge.logit_scale.device
        rows, targets = [], []
        for i, (layout, answer) in enumerate(sequences):
            full = layout.extended(answer)
            ids = torch.tensor(full.ids, device=device)
            embeds = self.lm.embed_ids(ids, self.bridge.ret_embedding)
            if prefixes is not None:
                embeds = assemble_embeddings(full, embeds, {"image": prefixes[i]})
            rows.append(embeds)
            target = [IGNORE] * (len(layout) - 1) + answer + [IGNORE]
            targets.append(torch.tensor(target, device=device))
        width = max(len(r) for r in rows)
        mask = torch.stack([_pad(torch.ones(len(r), device=device), width) for r in rows])
        embeds = torch.stack([_pad(r, width) for r in rows])
        return Batch(embeds, mask.long(), torch.stack([_pad(t, width, IGNORE) for t in targets]))

    def _hidden(self, batch: Batch) -> torch.Tensor:
        hidden, _ = self.lm.hidden(batch.embeds, attention_mask=batch.mask)
        return hidden  # (B, T, D)

    def _token_loss(self, hiddens: list[torch.Tensor], targets: list[torch.Tensor]
                    ) -> torch.Tensor:
        """Cross-entropy over answer tokens only: logits are computed just where needed."""
        picked = [(h[t != IGNORE], t[t != IGNORE]) for h, t in zip(hiddens, targets, strict=True)]
        hidden = torch.cat([h for h, _ in picked])  # (N, D)
        labels = torch.cat([t for _, t in picked])  # (N,)
        logits = self.lm.logits(hidden, self.bridge.ret_output_row).float()
        return F.cross_entropy(logits, labels)


def contrastive_loss(queries: torch.Tensor, images: torch.Tensor, logit_scale: torch.Tensor
                     ) -> torch.Tensor:
    """Symmetric InfoNCE between (B, S) text queries and (B, S) images; both normalised."""
    scale = logit_scale.exp().clamp(max=100.0)
    logits = scale * queries @ images.T  # (B, B)
    labels = torch.arange(len(queries), device=queries.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


def _pad(x: torch.Tensor, width: int, value: float = 0.0) -> torch.Tensor:
    pad = width - x.shape[0]
    if pad == 0:
        return x
    filler = torch.full((pad, *x.shape[1:]), value, dtype=x.dtype, device=x.device)
    return torch.cat([x, filler])
