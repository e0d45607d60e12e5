"""Evaluation metrics: cross-modal retrieval recall and captioning scores.

Retrieval is counted the way RSICD papers count it: every caption of the split is a text query
against the split's images (one right image each); every image queries all captions and is a
hit at k when any of its own captions is among the top k. mR is the mean of the six recalls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

logger = logging.getLogger(__name__)

KS = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalMetrics:
    """Recalls in percent and the 1-based rank of the right answer for every query."""

    t2i: dict[int, float]  # k -> R@k for caption -> image queries
    i2t: dict[int, float]  # k -> R@k for image -> caption queries
    t2i_ranks: list[int] = field(repr=False)  # per caption: rank of its image
    i2t_ranks: list[int] = field(repr=False)  # per image: best rank among its captions

    @property
    def mean_recall(self) -> float:
        """mR: the mean of t2i and i2t R@1/5/10, in percent."""
        values = list(self.t2i.values()) + list(self.i2t.values())
        return sum(values) / len(values)

    def summary(self) -> dict[str, float]:
        """Flat {"t2i_R@1": .., "i2t_R@10": .., "mR": ..}, rounded, for JSON and logs."""
        out = {f"t2i_R@{k}": round(v, 2) for k, v in self.t2i.items()}
        out.update({f"i2t_R@{k}": round(v, 2) for k, v in self.i2t.items()})
        out["mR"] = round(self.mean_recall, 2)
        return out


def retrieval_metrics(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_to_image: Sequence[int],
    ks: Sequence[int] = KS,
) -> RetrievalMetrics:
    """Recall@k both ways from embeddings (compared by cosine similarity).

    Args:
        image_emb: (N_img, D) one row per image.
        text_emb: (N_txt, D) one row per caption.
        text_to_image: for each caption, the row of its image in ``image_emb``.
        ks: the cut-offs.
    """
    img = torch.nn.functional.normalize(image_emb.float(), dim=-1)
    txt = torch.nn.functional.normalize(text_emb.float(), dim=-1)
    return retrieval_from_scores(txt @ img.T, text_to_image, ks)  # (N_txt, N_img)


def retrieval_from_scores(
    scores: torch.Tensor, text_to_image: Sequence[int], ks: Sequence[int] = KS
) -> RetrievalMetrics:
    """Recall@k from a (N_txt, N_img) similarity matrix (higher = more similar)."""
    owner = torch.as_tensor(list(text_to_image), dtype=torch.long)  # (N_txt,)
    if scores.shape[0] != owner.numel():
        raise ValueError(f"{scores.shape[0]} caption rows but {owner.numel()} owners")
    t2i_ranks = _t2i_ranks(scores, owner)
    i2t_ranks = _i2t_ranks(scores, owner)
    return RetrievalMetrics(
        t2i={k: _recall(t2i_ranks, k) for k in ks},
        i2t={k: _recall(i2t_ranks, k) for k in ks},
        t2i_ranks=t2i_ranks.tolist(),
        i2t_ranks=i2t_ranks.tolist(),
    )


def _t2i_ranks(scores: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Per caption, 1 + the number of images scored strictly higher than its own (N_txt,)."""
    right = scores.gather(1, owner[:, None])  # (N_txt, 1)
    return (scores > right).sum(dim=1) + 1


def _i2t_ranks(scores: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Per image, the best (smallest) rank among its captions over all captions (N_img,)."""
    by_image = scores.T  # (N_img, N_txt)
    n_img = by_image.shape[0]
    mine = owner[None, :] == torch.arange(n_img)[:, None]  # (N_img, N_txt)
    if not bool(mine.any(dim=1).all()):
        raise ValueError("every image needs at least one caption")
    best = by_image.masked_fill(~mine, float("-inf")).max(dim=1, keepdim=True).values  # (N_img, 1)
    return (by_image > best).sum(dim=1) + 1


def _recall(ranks: torch.Tensor, k: int) -> float:
    return 100.0 * float((ranks <= k).float().mean()) if ranks.numel() else 0.0


def caption_metrics(
    generated: Mapping[str, Sequence[str]],
    references: Mapping[str, Sequence[str]],
    meteor: bool = True,
) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr with pycocoevalcap (PTB tokenizer; needs Java).

    Args:
        generated: image id -> [one generated caption] (only the first is scored).
        references: image id -> reference captions; must cover every generated id.
        meteor: compute METEOR (its Java start-up takes ~10-30 s on a busy 2-core machine).

    Returns:
        {"BLEU-1": .., "BLEU-4": .., "METEOR": .., "ROUGE-L": .., "CIDEr": ..} as fractions.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    missing = [k for k in generated if k not in references]
    if missing:
        raise ValueError(f"no references for {len(missing)} image(s), e.g. {missing[:3]}")
    ids = [str(k) for k in generated]
    tok = PTBTokenizer()
    res = tok.tokenize({str(k): [{"caption": v[0]}] for k, v in generated.items()})
    gts = tok.tokenize({str(k): [{"caption": c} for c in references[k]] for k in generated})
    gts = {k: gts[k] for k in ids}
    out: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"BLEU-{i + 1}": float(b) for i, b in enumerate(bleu)})
    if meteor:
        out["METEOR"] = float(Meteor().compute_score(gts, res)[0])
    out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return out
