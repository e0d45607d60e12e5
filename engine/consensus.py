"""How far a description agrees with the captions of the image's nearest train images.

Consensus re-ranking (Devlin et al. 2015, "Exploring nearest neighbor approaches for image
captioning"): among a description's candidates, the one whose words the captions of images
like it share is likelier right. The agreement is CIDEr-D (Vedantam et al. 2015) of the
candidate against those captions, with n-gram document frequencies counted over the train
images of the caption datastore (the same train-only captions the description prompt shows,
so nothing held out is read). A neighbour's caption counts once per time it was released, as
the prompt's votes count it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_N = 4  # n-grams of 1 to 4 words, as CIDEr
SIGMA = 6.0  # CIDEr-D's length penalty: a Gaussian over the word-count difference
_WORD = re.compile(r"[a-z0-9]+")

Ngrams = tuple[Counter[tuple[str, ...]], ...]  # counts of each n-gram, one Counter per n


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (as the PTB tokenizer of the scorer leaves them)."""
    return _WORD.findall(text.lower())


def ngram_counts(tokens: Sequence[str]) -> Ngrams:
    """Counts of the 1- to ``MAX_N``-grams of ``tokens``."""
    return tuple(Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
                 for n in range(1, MAX_N + 1))


@dataclass(frozen=True)
class _Weighted:
    """One text's n-grams as tf-idf vectors, their norms and its length in words."""

    vectors: tuple[dict[tuple[str, ...], float], ...]
    norms: tuple[float, ...]
    length: int


class CaptionConsensus:
    """CIDEr-D of a candidate against reference captions, document frequencies from a corpus
    of images' captions (each image one document, as CIDEr counts its references).
    """

    def __init__(self, corpus: Sequence[Sequence[str]]) -> None:
        if not corpus:
            raise ValueError("consensus needs a corpus of captioned images")
        frequency: Counter[tuple[str, ...]] = Counter()
        for captions in corpus:
            seen: set[tuple[str, ...]] = set()
            for caption in captions:
                for counts in ngram_counts(words(caption)):
                    seen.update(counts)
            frequency.update(seen)
        self._frequency = frequency
        self._log_documents = math.log(float(len(corpus)))

    def score(self, candidate: str, references: Sequence[str]) -> float:
        """CIDEr-D of ``candidate`` against ``references`` (0 when there are none)."""
        return self.against(references)(candidate)

    def against(self, references: Sequence[str]) -> Callable[[str], float]:
        """``score`` against these ``references``, each weighed once for every candidate
        (a description's candidates share their references; nothing outlives them).
        """
        weighed = [self._weigh(r) for r in references]

        def scored(candidate: str) -> float:
            if not weighed:
                return 0.0
            mine = self._weigh(candidate)
            return 10.0 * sum(self._similarity(mine, r) for r in weighed) / len(weighed)

        return scored

    def _weigh(self, text: str) -> _Weighted:
        tokens = words(text)
        vectors = tuple(
            {gram: count * (self._log_documents - math.log(max(1.0, self._frequency[gram])))
             for gram, count in counts.items()}
            for counts in ngram_counts(tokens))
        norms = tuple(math.sqrt(sum(v * v for v in vector.values())) for vector in vectors)
        return _Weighted(vectors, norms, len(tokens))

    @staticmethod
    def _similarity(candidate: _Weighted, reference: _Weighted) -> float:
        """Mean over n of the clipped cosine, times the length penalty (CIDEr-D, one pair)."""
        penalty = math.exp(-((candidate.length - reference.length) ** 2) / (2 * SIGMA ** 2))
        total = 0.0
        for mine, theirs, my_norm, their_norm in zip(candidate.vectors, reference.vectors,
                                                     candidate.norms, reference.norms,
                                                     strict=True):
            if my_norm == 0.0 or their_norm == 0.0:
                continue
            shared = sum(min(value, theirs[gram]) * theirs[gram]
                         for gram, value in mine.items() if gram in theirs)
            total += shared / (my_norm * their_norm)
        return penalty * total / MAX_N
