"""The tests' one fake engine: a constant-time ``EnginePort`` with deterministic vectors and
scripted replies, no model. Every test (bot, store, CLI) and ``scripts/bench_bot.py`` use it;
``tests/test_fake_engine.py`` holds it to the port.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from PIL import Image

from engine.answers import Seen
from engine.intent import Intent
from engine.types import GenerationOptions, GenerationResult, ImagePart, TextPart, Turn

SEARCH_WORDS = ("show me", "find", "search")


def _unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (float32)."""
    return (vector / (np.linalg.norm(vector) + 1e-8)).astype(np.float32)


def text_vector(text: str, dim: int) -> np.ndarray:
    """A unit vector fixed by the (lower-cased) text: equal texts search alike."""
    seed = int.from_bytes(hashlib.sha256(text.lower().encode()).digest()[:4], "little")
    return _unit(np.random.default_rng(seed).standard_normal(dim))


def _thumbnails(images: Sequence[Image.Image]) -> np.ndarray:
    """Each image's 2×2 thumbnail, centred and normalised, (N, 12)."""
    rows = []
    for image in images:
        small = np.asarray(image.convert("RGB").resize((2, 2)), dtype=np.float32)
        rows.append(_unit(small.reshape(-1) - 127.5))
    return np.stack(rows).astype(np.float32)


class FakeEngine:
    """Replies "I see N image(s)..." and emits [RET] when the last user text asks for images.

    Image embeddings come from the pixels (a 2×2 thumbnail, 12 values); the bridge is a
    projection seeded by ``bridge_id``, so two bridge ids give two incompatible galleries.
    ``delay_s`` makes each generation take that long; ``fail_next`` raises once.
    """

    encoder_id = "fake-encoder"
    gallery_encoder_id = "fake-encoder__turns4"
    search_dim = 8
    score_scale = 1.0
    image_dim = 12

    def __init__(self, delay_s: float = 0.0, reply_words: int = 12,
                 bridge_id: str = "fake-bridge") -> None:
        self.bridge_id = bridge_id
        self.search_id = bridge_id  # no second tower: the bridge alone makes the space
        self.delay_s = delay_s
        self.reply_words = reply_words
        self.embed_calls = 0
        self.gallery_embed_calls = 0
        self.generate_calls = 0
        self.retrieved: list[list[Turn]] = []  # the dialogue of each retrieve call
        self.fail_next: Exception | None = None
        self.last_dialogue: list[Turn] = []
        self.last_embeddings: dict[str, np.ndarray] = {}
        self.last_options: GenerationOptions | None = None
        self.forgotten: list[str] = []
        self.answered: list[tuple[Intent, list[Seen]]] = []  # each question routed to answer
        self._lock = threading.Lock()
        seed = int.from_bytes(hashlib.sha256(bridge_id.encode()).digest()[:4], "little")
        rng = np.random.default_rng(seed)
        self._projection = rng.standard_normal((self.image_dim, self.search_dim)).astype(np.float32)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Each image's 2×2 thumbnail, centred and normalised, (N, 12)."""
        with self._lock:
            self.embed_calls += len(images)
        return _thumbnails(images)

    def embed_for_gallery(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The mean of each image's four quarter turns' thumbnails, (N, 12)."""
        with self._lock:
            self.gallery_embed_calls += len(images)
        turns = [_thumbnails([image.rotate(90 * k, expand=True) for image in images])
                 for k in range(4)]
        return np.mean(turns, axis=0).astype(np.float32)

    def gallery_rows(self, image_embeddings: np.ndarray) -> np.ndarray:
        """Embeddings through the seeded bridge projection, normalised, (N, search_dim)."""
        return np.stack([_unit(row @ self._projection) for row in image_embeddings])

    def image_query(self, image_embeddings: np.ndarray) -> np.ndarray:
        """The gallery rows (no hubness here), as the real engine's are without a prior."""
        return self.gallery_rows(image_embeddings)

    def answer(self, intent: Intent, dialogue: Sequence[Turn], seen: Sequence[Seen],
               session: str | None = None) -> str:
        """Records the question, then replies as ``generate`` would, naming the kind."""
        with self._lock:
            self.answered.append((intent, list(seen)))
        embeddings = {s.key: s.embedding for s in seen}
        shas = {p.sha256 for t in dialogue for p in t.parts if isinstance(p, ImagePart)}
        if not shas <= embeddings.keys():  # about results just shown, not the dialogue's own
            dialogue = [Turn("user", (*dialogue[-1].parts[:1], *map(ImagePart, embeddings)))]
        options = GenerationOptions(allow_retrieval=False, session=session)
        return self.generate(dialogue, embeddings, options).text

    def forget_session(self, session: str) -> None:
        """Record which conversation was forgotten."""
        self.forgotten.append(session)

    def retrieve(
        self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """The query vector of the last user text."""
        with self._lock:
            self.retrieved.append(list(dialogue))
        return text_vector(_last_user_text(dialogue), self.search_dim)

    def generate(
        self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray],
        options: GenerationOptions | None = None,
    ) -> GenerationResult:
        """The streamed reply's final result."""
        result: GenerationResult | None = None
        for piece in self.stream(dialogue, image_embeddings, options):
            if isinstance(piece, GenerationResult):
                result = piece
        assert result is not None
        return result

    def stream(
        self, dialogue: Sequence[Turn], image_embeddings: Mapping[str, np.ndarray],
        options: GenerationOptions | None = None,
    ) -> Iterator[str | GenerationResult]:
        """Words, then the result: [RET] (a query) for "show me/find/search", else a caption."""
        with self._lock:
            self.generate_calls += 1
            self.last_dialogue = list(dialogue)
            self.last_embeddings = dict(image_embeddings)
            self.last_options = options
            failure, self.fail_next = self.fail_next, None
        if self.delay_s:
            time.sleep(self.delay_s)
        if failure is not None:
            raise failure
        missing = [p.sha256 for t in dialogue for p in t.parts
                   if isinstance(p, ImagePart) and p.sha256 not in image_embeddings]
        assert not missing, f"embeddings missing for {missing}"
        text = _last_user_text(dialogue)
        allow = options is None or options.allow_retrieval
        if allow and any(word in text.lower() for word in SEARCH_WORDS):
            yield "Here are some images."
            yield GenerationResult("Here are some images.", text_vector(text, self.search_dim))
            return
        images = sum(isinstance(p, ImagePart) for t in dialogue for p in t.parts)
        words = [f"I see {images} image(s)."] + [f"word{i}" for i in range(self.reply_words)]
        for word in words:
            yield word + " "
        yield GenerationResult(" ".join(words))


def _last_user_text(dialogue: Sequence[Turn]) -> str:
    """The text parts of the newest user turn, joined."""
    for turn in reversed(dialogue):
        if turn.role == "user":
            return " ".join(p.text for p in turn.parts if isinstance(p, TextPart))
    return ""
