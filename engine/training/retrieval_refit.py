"""The recipe's last stage: the two retrieval maps refit on cached [RET] states.

In the joint training every [RET] query costs a pass of the LM, so in 300 steps the retrieval
maps see 96 queries at a time, about three per train image. Yet the LM is frozen and, once the
joint training has fixed the [RET] row, a request's hidden state at [RET] never changes:
computed once (about 20 minutes for RSICD train on 2 cores), the states let the two linear
maps (pooled image feature -> shared space, [RET] state -> shared space) and the logit scale
train for many epochs, each request ranked against every train image and each image against
every train request (one linear map each, so nothing is stale). Descriptions do not
change: the prefix maps and the [RET] row are left as they are. Still the method: frozen
encoder, frozen LM, linear maps. The refit maps then make the bridge's hubness prior
(``hubness_prior``): every train request's and image's vector, the banks searches are
discounted by.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from engine.bridge import Bridge
from engine.hubness import HubnessPrior
from engine.model import RSCapRet
from engine.tokens import RETRIEVAL_PROMPTS
from engine.training.config import RetrievalRefitConfig
from engine.training.contrastive import full_info_nce
from engine.training.metrics import retrieval_metrics
from engine.training.schedule import warmup_cosine
from engine.types import TextPart, Turn

STATE_BATCH = 64
STATE_PART = 1024  # states per cache file: what a stopped run can lose


@dataclass(frozen=True)
class Requests:
    """Retrieval requests for a set of images: each image's distinct captions, each caption in
    one of the request phrasings (in turn, so all are taught), and the image each belongs to.
    """

    texts: tuple[str, ...]
    owners: tuple[int, ...]  # the image (row of the features) of each request

    @classmethod
    def for_captions(cls, captions: Sequence[Sequence[str]]) -> Requests:
        texts: list[str] = []
        owners: list[int] = []
        for image, image_captions in enumerate(captions):
            for caption in dict.fromkeys(image_captions):  # the release repeats captions
                phrasing = RETRIEVAL_PROMPTS[len(texts) % len(RETRIEVAL_PROMPTS)]
                texts.append(phrasing.format(query=caption))
                owners.append(image)
        return cls(tuple(texts), tuple(owners))


@dataclass
class RefitHistory:
    """Per epoch: the mean loss, and the mean recall of held-out images (when some were)."""

    loss: list[float] = field(default_factory=list)
    holdout_mr: list[float] = field(default_factory=list)


def cached_ret_states(engine: RSCapRet, requests: Requests, cache_dir: Path) -> torch.Tensor:
    """Each request's [RET] state (N, D), computed once per ([RET] row, LM, requests) and cached.

    The [RET] input row is the only trained part a state depends on: it names the cache. The
    states are written in parts as they are computed, so a stopped run resumes.
    """
    digest = hashlib.sha256(engine.bridge.ret_embedding.detach().cpu().numpy().tobytes())
    digest.update("\n".join((engine.bridge.spec.lm_id, *requests.texts)).encode())
    folder = Path(cache_dir) / f"ret_states__{digest.hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    distinct = list(dict.fromkeys(requests.texts))  # one LM pass per distinct text
    parts = [_part(engine, distinct[start:start + STATE_PART], folder / f"part_{n:04d}")
             for n, start in enumerate(tqdm(range(0, len(distinct), STATE_PART),
                                            desc="[RET] states", unit="part"))]
    row = {text: i for i, text in enumerate(distinct)}
    return torch.cat(parts)[[row[text] for text in requests.texts]]


def _part(engine: RSCapRet, texts: Sequence[str], path: Path) -> torch.Tensor:
    """The states of ``texts``, read from ``path`` or computed and written there."""
    file = path.with_suffix(".safetensors")
    if file.is_file():
        return load_file(str(file))["states"]
    chunks = []
    for start in range(0, len(texts), STATE_BATCH):
        dialogues = [[Turn("user", (TextPart(text),))] for text in texts[start:start + STATE_BATCH]]
        with torch.inference_mode():
            chunks.append(engine.ret_states(dialogues, {}).cpu())
    states = torch.cat(chunks)
    save_file({"states": states.contiguous()}, str(path.with_suffix(".tmp")))
    path.with_suffix(".tmp").replace(file)
    return states


def refit_retrieval(bridge: Bridge, states: torch.Tensor, owners: Sequence[int],
                    images: torch.Tensor, config: RetrievalRefitConfig, seed: int = 0,
                    holdout: int = 0) -> RefitHistory:
    """Train ``bridge``'s retrieval maps and logit scale in place on cached states.

    Args:
        bridge: a trained bridge; only ``image_to_shared``, ``ret_to_shared`` and
            ``logit_scale`` change.
        states: (Q, D) [RET] states.
        owners: ``owners[q]``, the image (column of ``images``) of state q.
        images: (R, N, D_img) pooled features of R views of each image; each epoch draws one
            view per image, as the joint training does.
        config: epochs, batch size, learning rate, weight decay, warm-up.
        seed: seeds the held-out images, the views, the order and the captions drawn.
        holdout: this many images, drawn at random (seeded), and their requests are left out
            of training and ranked among themselves after each epoch
            (``RefitHistory.holdout_mr``).
    """
    rng = random.Random(seed)
    device = bridge.logit_scale.device
    states, images = states.to(device), images.to(device)
    held = sorted(rng.sample(range(images.shape[1]), holdout))
    kept = sorted(set(range(images.shape[1])) - set(held))
    position = {image: p for p, image in enumerate(kept)}
    trained = [q for q, image in enumerate(owners) if image in position]
    trained_states = states[trained]
    trained_owners = torch.tensor([position[owners[q]] for q in trained], device=device)
    requests_of: list[list[int]] = [[] for _ in kept]
    for row, owner in enumerate(trained_owners.tolist()):
        requests_of[owner].append(row)
    params = [*bridge.image_to_shared.parameters(), *bridge.ret_to_shared.parameters(),
              bridge.logit_scale]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    steps_per_epoch = -(-len(kept) // config.batch_size)
    schedule = warmup_cosine(optimizer, config.warmup_steps, steps_per_epoch * config.epochs)
    kept_features = images[:, kept]  # (R, K, D_img)
    history = RefitHistory()
    for _ in tqdm(range(config.epochs), desc="retrieval refit", unit="epoch"):
        views = torch.randint(images.shape[0], (len(kept),), generator=_torch_rng(rng))
        bank_features = kept_features[views.to(device), torch.arange(len(kept), device=device)]
        order = list(range(len(kept)))
        rng.shuffle(order)
        losses = []
        for start in range(0, len(kept), config.batch_size):
            rows = order[start:start + config.batch_size]
            picked = torch.tensor([rng.choice(requests_of[row]) for row in rows], device=device)
            losses.append(_step(bridge, trained_states, trained_owners, picked, bank_features,
                                config.image_to_text_weight, optimizer))
            schedule.step()
        history.loss.append(sum(losses) / len(losses))
        if holdout:
            history.holdout_mr.append(_mean_recall(bridge, states, owners, images[0], held))
    return history


def _step(bridge: Bridge, states: torch.Tensor, owners: torch.Tensor, picked: torch.Tensor,
          features: torch.Tensor, image_to_text_weight: float,
          optimizer: torch.optim.Optimizer) -> float:
    """One step: the picked requests against every image, their images against every request
    (all keys and queries recomputed, none stale: each is one linear map).
    """
    loss = full_info_nce(bridge.query_vectors(states), owners, picked,
                         bridge.image_vectors(features),
                         bridge.logit_scale.exp().clamp(max=100.0), image_to_text_weight)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def _mean_recall(bridge: Bridge, states: torch.Tensor, owners: Sequence[int],
                 images: torch.Tensor, held: Sequence[int]) -> float:
    """MR of the held-out images' requests over the held-out images (val's metric)."""
    position = {image: p for p, image in enumerate(held)}
    mine = [q for q, image in enumerate(owners) if image in position]
    result = retrieval_metrics(bridge.image_vectors(images[held]),
                               bridge.query_vectors(states[mine]),
                               [position[owners[q]] for q in mine])
    return result.summary()["mR"]


@torch.no_grad()
def hubness_prior(bridge: Bridge, states: torch.Tensor, images: torch.Tensor,
                  beta: float) -> HubnessPrior:
    """The prior from train vectors made by ``bridge``'s (refit) maps.

    Args:
        bridge: the refit bridge whose two retrieval maps make the banks.
        states: (Q, D) every train request's [RET] state.
        images: (R, N, D_img) pooled features of R views of each train image; a bank row is
            the mean of an image's views, as a gallery row is of its quarter turns.
        beta: the prior's temperature.
    """
    queries = bridge.query_vectors(states.to(bridge.logit_scale.device))
    keys = bridge.image_vectors(images.to(bridge.logit_scale.device).mean(0))
    return HubnessPrior(queries.cpu(), keys.cpu(), beta)


def _torch_rng(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.randrange(2**31))
