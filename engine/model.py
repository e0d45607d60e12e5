"""RS-CapRet: the engine facade the app talks to (captions, chat, [RET] retrieval).

It turns a dialogue plus precomputed image embeddings into prompt embeddings, hands them to a
backend to decode, and maps [RET] hidden states into the shared retrieval space.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

import numpy as np
import torch
from PIL import Image

from engine.answers import Answers, Seen
from engine.asking import answer_question
from engine.backends.base import Backend
from engine.bridge import Bridge
from engine.config import EngineConfig
from engine.datastore import DescriptionHints
from engine.dihedral import quarter_turned
from engine.generate import BeamCandidate, DecodeSettings, Finished
from engine.hubness import search_scores
from engine.intent import Intent
from engine.language import LanguageModel
from engine.prompt import PromptLayout, answering, assemble_embeddings, image_turn, layout_dialogue
from engine.search import SearchSpace, search_words
from engine.tokens import CAPTION_PROMPT, RETRIEVAL_PROMPTS, with_neighbours
from engine.types import GenerationOptions, GenerationResult, ImagePart, TextPart, Turn

T = TypeVar("T")


class ImageEncoder(Protocol):
    """A frozen image encoder: PIL images -> (N, D_img) features."""

    dim: int
    encoder_id: str
    grid_cells: int  # cells after the pooled vector in each feature (0: none)

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor: ...


class RSCapRet:
    """The whole model: frozen encoder and LM, trained bridge, a decoding backend."""

    def __init__(self, config: EngineConfig, encoder: ImageEncoder, lm: LanguageModel,
                 bridge: Bridge, backend: Backend, bridge_id: str,
                 hints: DescriptionHints | None = None, search: SearchSpace | None = None
                 ) -> None:
        self.config = config
        self.encoder = encoder
        self.lm = lm
        self.bridge = bridge.eval()
        self.backend = backend
        self.bridge_id = bridge_id
        # The neighbour captions a bridge tuned with them reads when it describes.
        self.hints = hints
        self.encoder_id = encoder.encoder_id
        turns = config.vision.gallery_turns
        self.gallery_encoder_id = self.encoder_id if turns == 1 else (
            f"{self.encoder_id}__turns{turns}")
        # How searches score images; the bridge's match alone unless the factory adds the
        # CLIP towers'. Its id keys every gallery vector (a new scoring means new vectors).
        self.search = search or SearchSpace(bridge, bridge_id)
        self.search_id = self.search.search_id
        self.search_dim = self.search.dim
        self.score_scale = self.search.score_scale
        self._answers: Answers | None = None  # made on the first question (keeps its queries)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Encoder features (N, D_img), float32; callers cache them by content hash."""
        with torch.inference_mode():
            return self.encoder.embed(images).float().cpu().numpy()

    def embed_for_gallery(self, images: Sequence[Image.Image]) -> np.ndarray:
        """What gallery vectors are made from (N, D_img): the encoder embedding averaged over
        ``vision.gallery_turns`` quarter turns of each image. Only its pooled part is meant
        (``gallery_rows`` reads no more): averaged cells no longer say where anything is, so it
        never feeds a prompt. Cacheable by content hash under ``gallery_encoder_id``.
        """
        turns = self.config.vision.gallery_turns
        with torch.inference_mode():
            views = [self.encoder.embed([quarter_turned(image, turn) for image in images])
                     for turn in range(turns)]
            return torch.stack(views).mean(0).float().cpu().numpy()

    def generate(self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray],
                 options: GenerationOptions | None = None) -> GenerationResult:
        """Reply to ``dialogue``; on [RET] the result carries the query vector."""
        result = None
        for item in self.stream(dialogue, image_embeddings, options):
            if isinstance(item, GenerationResult):
                result = item
        assert result is not None
        return result

    def stream(self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray],
               options: GenerationOptions | None = None) -> Iterator[str | GenerationResult]:
        """Yield text pieces as they are decoded, then the ``GenerationResult``."""
        dialogue = self._with_hints(dialogue, image_embeddings)
        embeds = self._prompt_embeddings(dialogue, image_embeddings, add_generation_prompt=True)
        options = options or GenerationOptions()
        settings = self._settings(options)
        described = self._described_image(dialogue, image_embeddings, options)
        if described is not None:
            settings = self._description_settings(settings, described)
        ids: list[int] = []
        shown = ""
        for event in self.backend.decode(embeds, settings):
            if isinstance(event, Finished):
                query = (None if event.ret_hidden is None
                         else self._query(event.ret_hidden, dialogue))
                yield GenerationResult(self._text(ids), query, tuple(ids))
                return
            ids.append(event)
            text = self._text(ids)
            if len(text) > len(shown) and not text.endswith("\ufffd"):  # whole characters only
                yield text[len(shown):]
                shown = text

    def generate_batch(self, dialogues: Sequence[Sequence[Turn]],
                       image_embeddings: Mapping[str, np.ndarray],
                       options: GenerationOptions | None = None) -> list[GenerationResult]:
        """``generate`` for each dialogue, all submitted at once (evaluation's path).

        Each runs in its own thread exactly as a chat's turn does, so the hf backend's
        continuous batcher shares its decode steps among them (a vLLM server batches them
        itself): the same strategies, description re-ranking and results as one at a time.
        """
        with ThreadPoolExecutor(self._concurrency(), "capret-generate") as pool:
            return list(pool.map(lambda d: self.generate(d, image_embeddings, options),
                                 dialogues))

    def retrieve(self, dialogue: Sequence[Turn],
                 image_embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
        """Force [RET] as the assistant's answer; the normalised query vector (search_dim,)."""
        layout = self._layout(dialogue, add_generation_prompt=True).extended([self.lm.ret_id])
        embeds = self._embed_layout(layout, image_embeddings, answering(dialogue))
        return self._query(self.backend.last_hidden(embeds), dialogue)

    def retrieve_batch(self, dialogues: Sequence[Sequence[Turn]],
                       image_embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
        """``retrieve`` for several dialogues in one forward pass: (N, search_dim)."""
        hidden = self.ret_states(dialogues, image_embeddings)
        with torch.inference_mode():
            words = [search_words(d) for d in dialogues]
            return self.search.text_queries(hidden, words).cpu().numpy()

    def ret_states(self, dialogues: Sequence[Sequence[Turn]],
                   image_embeddings: Mapping[str, np.ndarray]) -> torch.Tensor:
        """The LM's float hidden state at a [RET] closing each dialogue (N, D): what the
        bridge maps to a query vector.
        """
        sequences = [
            self._embed_layout(self._layout(d, add_generation_prompt=True).extended(
                [self.lm.ret_id]), image_embeddings, answering(d)) for d in dialogues]
        return self.backend.last_hidden_batch(sequences).float()  # (N, D)

    def gallery_rows(self, image_embeddings: np.ndarray) -> np.ndarray:
        """What a gallery stores for each image (N, search_dim), normalised."""
        with torch.inference_mode():
            x = torch.as_tensor(image_embeddings, dtype=torch.float32, device=self._device)
            return self.search.rows(x).float().cpu().numpy()

    def image_query(self, image_embeddings: np.ndarray) -> np.ndarray:
        """Searches by example ("more like this"), (N, search_dim), normalised."""
        with torch.inference_mode():
            x = torch.as_tensor(image_embeddings, dtype=torch.float32, device=self._device)
            return self.search.image_queries(x).float().cpu().numpy()

    def caption(self, image: Image.Image, options: GenerationOptions | None = None) -> str:
        """One image in, one description out."""
        embedding = self.embed_images([image])[0]
        turn = image_turn(CAPTION_PROMPT, "image")
        opts = dataclasses.replace(options or GenerationOptions(), allow_retrieval=False)
        return self.generate([turn], {"image": embedding}, opts).text

    def answer(self, intent: Intent, dialogue: Sequence[Turn], seen: Sequence[Seen],
               session: str | None = None) -> str:
        """A question about the images ``seen`` (the conversation's, in order, or the results
        just shown), answered from their pixels (``engine/asking.py``).
        """
        if self._answers is None:
            self._answers = Answers(self)
        return answer_question(self._answers, intent, dialogue, seen, session)

    def forget_session(self, session: str) -> None:
        """Drop what the backend keeps of a conversation (``/reset``, ``/forget``)."""
        self.backend.forget_session(session)

    def _concurrency(self) -> int:
        """Requests in flight at once: as many as share a decode step (or a server's batch)."""
        if self.config.backend == "vllm":
            return self.config.vllm.concurrency
        return self.config.batching.max_rows

    @property
    def _device(self) -> torch.device:
        return next(self.bridge.parameters()).device

    def _layout(self, dialogue: Sequence[Turn], add_generation_prompt: bool) -> PromptLayout:
        return layout_dialogue(self.lm.tokenizer, dialogue, self.bridge.spec.tokens_per_image,
                               self.config.language.system_prompt, add_generation_prompt)

    def _prompt_embeddings(self, dialogue: Sequence[Turn], images: Mapping[str, np.ndarray],
                           add_generation_prompt: bool) -> torch.Tensor:
        return self._embed_layout(self._layout(dialogue, add_generation_prompt), images,
                                  answering(dialogue))

    @torch.inference_mode()
    def _embed_layout(self, layout: PromptLayout, images: Mapping[str, np.ndarray],
                      answers: bool) -> torch.Tensor:
        """The layout's embeddings; ``answers``: its images stand in the answer maps' vectors
        (``Bridge.prefix``).
        """
        ids = torch.tensor(layout.ids, device=self._device)
        tokens = self.lm.embed_ids(ids, self.bridge.ret_embedding)  # (T, D)
        shas = sorted({sha for _, sha in layout.image_slots})
        prefixes: dict[str, torch.Tensor] = {}
        if shas:
            missing = [s for s in shas if s not in images]
            if missing:
                raise KeyError(f"no embedding given for image(s) {', '.join(missing)}")
            feats = torch.as_tensor(np.stack([images[s] for s in shas]), device=self._device)
            prefixes = dict(zip(shas, self.bridge.prefix(feats.float(), answers), strict=True))
        return assemble_embeddings(layout, tokens, prefixes).to(self.lm.model.dtype)

    def _with_hints(self, dialogue: Sequence[Turn], images: Mapping[str, np.ndarray]
                    ) -> Sequence[Turn]:
        """``dialogue`` with the captions of images like the one it asks to describe before
        the request, as the bridge was tuned (``self.hints``); any other dialogue as it is.
        Only the prompt changes: what the conversation keeps is the plain request.
        """
        if self.hints is None or not dialogue or dialogue[-1].role != "user":
            return dialogue
        asked = dialogue[-1]
        shas = [p.sha256 for p in asked.parts if isinstance(p, ImagePart)]
        texts = [p.text for p in asked.parts if isinstance(p, TextPart)]
        if len(shas) != 1 or len(texts) != 1 or answering(dialogue):
            return dialogue
        pooled = torch.as_tensor(images[shas[0]][:self.bridge.spec.pooled_dim])
        captions = self.hints.captions(pooled.to(self._device))
        return [*dialogue[:-1], image_turn(with_neighbours(texts[0], captions), shas[0])]

    def _described_image(self, dialogue: Sequence[Turn], images: Mapping[str, np.ndarray],
                          options: GenerationOptions) -> np.ndarray | None:
        """The embedding of the one image a description is asked of, when descriptions are
        decoded apart (``generation.description_beams`` > 1 and no strategy asked for).
        """
        if self.config.generation.description_beams <= 1 or options.strategy is not None:
            return None
        if answering(dialogue) or not dialogue or dialogue[-1].role != "user":
            return None
        shas = [p.sha256 for p in dialogue[-1].parts if isinstance(p, ImagePart)]
        return images[shas[0]] if len(shas) == 1 else None

    def _description_settings(self, settings: DecodeSettings, image: np.ndarray
                              ) -> DecodeSettings:
        g = self.config.generation
        bonuses = []
        if g.description_match:
            bonuses.append(self._search_match(image, g.description_match))
        if g.description_consensus and self.hints is not None:
            bonuses.append(self._consensus(image, g.description_consensus))
        return dataclasses.replace(settings, strategy="beam", num_beams=g.description_beams,
                                   rerank=_summed(bonuses) if bonuses else None)

    def _consensus(self, image: np.ndarray, weight: float
                   ) -> Callable[[Sequence[BeamCandidate]], list[float]]:
        """``weight`` times how far each candidate agrees with the captions of the image's
        nearest train images (CIDEr-D against them; ``DescriptionHints.agreement``).
        """
        assert self.hints is not None, "consensus reads the neighbours the prompt reads"
        agree = self.hints.agreement(
            torch.as_tensor(image[:self.bridge.spec.pooled_dim]).to(self._device))
        return lambda candidates: [weight * agree(self._text(c.ids)) for c in candidates]

    def _search_match(self, image: np.ndarray, weight: float
                      ) -> Callable[[Sequence[BeamCandidate]], list[float]]:
        """``weight`` times how well each candidate's words, asked as a search ("Show me
        <words>"), find ``image``: its search score, cosine less both hubness offsets.
        """
        with torch.inference_mode():
            row = self.bridge.gallery_rows(torch.as_tensor(
                image[None], dtype=torch.float32, device=self._device))  # the bridge's alone

        def bonus(candidates: Sequence[BeamCandidate]) -> list[float]:
            asked = [[Turn("user", (TextPart(RETRIEVAL_PROMPTS[0].format(
                query=self._text(c.ids))),))] for c in candidates]
            hidden = self.ret_states(asked, {})
            with torch.inference_mode():
                scores = search_scores(self.bridge.text_queries(hidden), row)[:, 0]
            return [weight * float(x) for x in scores]

        return bonus

    def _query(self, ret_hidden: torch.Tensor, dialogue: Sequence[Turn]) -> np.ndarray:
        with torch.inference_mode():
            vector = self.search.text_queries(ret_hidden.float().unsqueeze(0),
                                              [search_words(dialogue)])[0]
        return vector.cpu().numpy()

    def _text(self, ids: list[int]) -> str:
        text_ids = [i for i in ids if i != self.lm.ret_id]
        return str(self.lm.tokenizer.decode(text_ids, skip_special_tokens=True)).strip()

    def _settings(self, options: GenerationOptions) -> DecodeSettings:
        g = self.config.generation
        return DecodeSettings(
            strategy=_pick(options.strategy, g.strategy),
            max_new_tokens=_pick(options.max_new_tokens, g.max_new_tokens),
            temperature=_pick(options.temperature, g.temperature),
            top_p=_pick(options.top_p, g.top_p),
            num_beams=_pick(options.num_beams, g.num_beams),
            repetition_penalty=g.repetition_penalty,
            ret_logit_bias=g.ret_logit_bias,
            allow_ret=options.allow_retrieval,
            ret_id=self.lm.ret_id,
            eos_ids=frozenset(self.lm.eos_ids),
            seed=options.seed,
            length_penalty=g.length_penalty,
            session=options.session,
        )


def _summed(bonuses: Sequence[Callable[[Sequence[BeamCandidate]], list[float]]]
            ) -> Callable[[Sequence[BeamCandidate]], list[float]]:
    """One re-ranking bonus per candidate: the sum of ``bonuses``'."""
    return lambda candidates: [sum(parts) for parts in zip(
        *(bonus(candidates) for bonus in bonuses), strict=True)]


def _pick(value: T | None, default: T) -> T:
    """A request's override, or the configured value when the request leaves it None."""
    return default if value is None else value
