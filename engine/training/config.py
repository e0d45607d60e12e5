"""Typed configuration of training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DatasetSource:
    """One caption dataset: an annotation file and the folder its image paths are relative to."""

    name: str = "rsicd"
    # Karpathy-style dataset_*.json or COCO captions json (detected from its keys).
    annotations: str = "../../shared/data/rsicd/dataset_rsicd.json"
    images: str = "../../shared/data/rsicd/images"


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Contrastive (CLIP) adaptation of the image encoder to remote sensing captions; the
    defaults made the shipped encoder (weights/encoder).
    """

    # 4 rather than 2: the towers' val mR 26.1 against 24.1, and the chain on it searches
    # and describes better (docs/EXPERIMENTS.md, "Longer encoder adaptation").
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 0.1
    warmup_steps: int = 50
    # Unfreeze only the last N blocks of the image trunk (and the projections); -1 = all.
    trainable_blocks: int = 2
    # Unfreeze the last N layers of the text tower; 0 trains only its projection.
    text_trainable_layers: int = 2
    seed: int = 0
    out_dir: str = "runs/encoder"
    # Learning rate of the fresh parts: both CLIP projections and the logit scale.
    head_learning_rate: float = 1e-3
    # Dihedral views (flips / quarter turns, 1..8) of each train image whose frozen early-trunk
    # maps are cached; each step picks one at random (the augmentation).
    cached_views: int = 2
    # Where the frozen early-trunk maps are cached between runs.
    feature_cache: str = "runs/cache"
    # Steps between checkpoints (a restarted run resumes from the newest).
    checkpoint_every: int = 25


@dataclass(frozen=True)
class RetrievalRefitConfig:
    """The last stage: the two retrieval maps refit on cached [RET] states (retrieval_refit.py)."""

    # Passes over the train images, each with one of its distinct captions (more overfit).
    epochs: int = 10
    # Images (one query each) per step; every step ranks each query against all train images.
    batch_size: int = 1024
    learning_rate: float = 1e-3
    warmup_steps: int = 20
    # Weight of the image->text direction, each image ranked against every train request (the
    # text->image one weighs 1).
    image_to_text_weight: float = 0.5
    # Temperature of the hubness prior made from every train request and image after the
    # refit (engine/hubness.py); 0 makes none. 5 raised val mR on both halves of `val` and
    # on train images held out of a refit (docs/EXPERIMENTS.md, "Discounting hubs").
    hubness_beta: float = 5.0


@dataclass(frozen=True)
class AnswerTuningConfig:
    """The stage after the joint training (answer_tuning.py): the bridge's answer maps, a
    second set of prefix maps used for every turn but a request to describe, tuned on answers.
    """

    # 600: at 400 the 4-epoch encoder's chain answered yes/no 83-84%, at 600 87%.
    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 10
    # What an image teaches in a pass over the train images, drawn with these weights: the
    # scene question or a follow-up dialogue (its description, then one or two questions).
    scene_share: float = 0.25
    dialogue_share: float = 0.75
    # Extra dialogues per pass that end in each image's count or colour question: only 9% of
    # the RSICD train images have one (200 count questions in all), too few to learn from
    # one pass.
    rare_repeats: int = 6
    # "prior": count questions are answered by the train split's commonest number for their
    # object (questions.with_count_prior), since the image does not tell an RSICD count
    # (scripts/count_prior.py): taught by image, the answers were memorised and fell to
    # 40-51% on val; "stated": by the number the image's own captions give.
    count_answers: Literal["stated", "prior"] = "prior"
    # Share of images that also teach a request for other images after their description,
    # answered with [RET] (the joint training asks for images only without one in context).
    # 0 in the shipped recipe: at 0.15 the model searched after a photo but answered worse.
    retrieval_share: float = 0.0
    # "answer": each answer weighs the same however long, so "Yes." counts as much as a
    # scene answer.
    answer_weighting: Literal["token", "answer"] = "answer"
    # Share of the tuning kept: the answer maps written are (1 - w)·description maps + w·tuned,
    # a weight-space interpolation (WiSE-FT, Wortsman et al. 2022); 1 keeps all of it.
    kept_share: float = 1.0
    checkpoint_every: int = 25


@dataclass(frozen=True)
class DescriptionTuningConfig:
    """The stage after answer tuning (description_tuning.py): the description maps tuned with
    the captions of each image's nearest train images in the prompt (SmallCap).
    """

    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 10
    # Nearest train images whose captions vote, and how many of the best voted the prompt
    # shows (the first is the k-nearest-caption baseline's caption).
    neighbours: int = 15
    shown: int = 3
    checkpoint_every: int = 25


@dataclass(frozen=True)
class TrainConfig:
    """Bridge training: L = λc·Lc + λr·(L_t2i + L_i2t).

    The defaults are the shipped recipe; the shipped bridge (weights/bridge) is step 300 of it
    (weights/README.md says why): one epoch, one random caption of each RSICD train image, a
    scene question for 20% and a follow-up dialogue for 30% of the images, 96 [RET] requests a
    step, each ranked against all 8,734 train images. Then `capret refit-retrieval`
    (``retrieval_refit``), `capret tune-answers` (``answer_tuning``) and `capret
    tune-descriptions` (``description_tuning``).
    """

    sources: tuple[DatasetSource, ...] = (DatasetSource(),)
    lambda_caption: float = 1.0
    lambda_retrieval: float = 1.0
    learning_rate: float = 2e-3
    batch_size: int = 32
    epochs: int = 1
    warmup_steps: int = 20
    # How answers of different lengths weigh in the answer loss: "token" (each token alike, so
    # a 15-token caption outweighs "Yes." five times) or "answer" (each answer alike: short
    # follow-up answers are learned as much as captions).
    answer_weighting: Literal["token", "answer"] = "token"
    # Which answers of a follow-up dialogue the loss teaches: "last" (the question's answer) or
    # "all" (the description and every answer: more taught tokens for the same forward pass).
    dialogue_targets: Literal["last", "all"] = "last"
    # Captions longer than this many LM tokens are truncated.
    max_caption_tokens: int = 40
    # "all": every caption of an image is a sample each epoch; "random": one per image (as
    # FROMAGe does: more epochs fit, and the release's repeated captions weigh no more).
    captions_per_image: Literal["all", "random"] = "random"
    # Share of images per epoch that also teach the scene question (answer: the label).
    scene_question_ratio: float = 0.2
    # Share of images per epoch that also teach a follow-up dialogue: the description, then
    # one or two grounded questions about the scene (engine/training/questions.py).
    dialogue_ratio: float = 0.3
    # [RET] requests per step (0: batch_size). They are short, so more of them are cheap, and
    # more images in the contrastive loss are more negatives.
    retrieval_batch_size: int = 96
    # What each [RET] query is ranked against: "batch" (the retrieval batch's images) or
    # "train" (every train image, one view each: thousands of negatives for one linear map of
    # cached features; the image->text direction stays in-batch).
    retrieval_negatives: Literal["batch", "train"] = "train"
    # Quarter-turn augmentations of each image's features (1 = none); overhead views have no up.
    feature_rotations: int = 2
    # Where frozen image features are cached between runs.
    feature_cache: str = "runs/cache"
    # bf16 autocast on CPUs that support it (AVX-512 BF16 / AMX) and on CUDA.
    autocast_bf16: bool = True
    seed: int = 0
    out_dir: str = "runs/bridge"
    # Steps between checkpoints (resume picks up the newest one).
    checkpoint_every: int = 25
    encoder: EncoderTrainConfig = field(default_factory=EncoderTrainConfig)
    answer_tuning: AnswerTuningConfig = field(default_factory=AnswerTuningConfig)
    description_tuning: DescriptionTuningConfig = field(default_factory=DescriptionTuningConfig)
    retrieval_refit: RetrievalRefitConfig = field(default_factory=RetrievalRefitConfig)
