"""``create_engine``: the one public way to build RS-CapRet from a config."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from engine.backends.base import Backend
from engine.backends.hf import HfBackend
from engine.bridge import WEIGHTS_FILE, Bridge, BridgeSpec, load_bridge
from engine.config import BridgeConfig, EngineConfig
from engine.datastore import (
    CaptionDatastore,
    DescriptionHints,
    NeighbourHints,
    load_datastore,
)
from engine.language import LanguageModel, load_language
from engine.model import ImageEncoder, RSCapRet
from engine.search import Basis, SearchSpace
from engine.vision import ClipImageEncoder, build_image_encoder

logger = logging.getLogger(__name__)


def create_engine(config: EngineConfig) -> RSCapRet:
    """Build encoder, LM, bridge and backend as configured (no hub access for the default)."""
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    encoder = build_image_encoder(config.vision, device)
    lm = load_lm(config, device)
    bridge, bridge_id = build_bridge(config.bridge, bridge_spec(config.bridge, encoder, lm))
    bridge.to(device)
    store = caption_datastore(config.bridge)
    return RSCapRet(config, encoder, lm, bridge, build_backend(config, lm, bridge), bridge_id,
                    description_hints(config.bridge, bridge, encoder, store),
                    search_space(config, bridge, bridge_id, encoder, store))


def search_space(config: EngineConfig, bridge: Bridge, bridge_id: str,
                 encoder: ClipImageEncoder, store: CaptionDatastore | None = None
                 ) -> SearchSpace:
    """The bridge's match, shared with the CLIP towers' when an adapted text tower is set
    (narrowed on the datastore's train image vectors where there is one).
    """
    if config.vision.text_weights is None or config.search.clip_share == 0:
        return SearchSpace(bridge, bridge_id)
    if config.vision.feature == "projected":
        raise ValueError("engine.vision.text_weights needs the pooled or spatial feature: the "
                         "projected one has no pooled output to place an image among words")
    basis = None
    if config.search.clip_dims and store is not None:
        _same_encoder(store, encoder, config.bridge)
        basis = Basis(store.vectors, config.search.clip_dims, store.digest)
    return SearchSpace(bridge, bridge_id, encoder, config.search.clip_share,
                       config.vision.text_weights, basis)


def load_lm(config: EngineConfig, device: torch.device) -> LanguageModel:
    """The whole LM for in-process decoding; only its input table when a server runs it."""
    if config.backend == "vllm":
        from engine.backends.vllm_table import load_input_table

        return load_input_table(config.language, device)
    return load_language(config.language, device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the config asks for device: cuda, but no CUDA device is available")
    return torch.device(name)


def bridge_spec(config: BridgeConfig, encoder: ImageEncoder, lm: LanguageModel) -> BridgeSpec:
    """The bridge shape this encoder and LM need."""
    return BridgeSpec(
        image_dim=encoder.dim, lm_dim=lm.hidden_size, prefix_tokens=config.prefix_tokens,
        shared_dim=config.shared_dim, tied_head=lm.tied, encoder_id=encoder.encoder_id,
        lm_id=lm.name, grid_cells=encoder.grid_cells,
    )


def build_bridge(config: BridgeConfig, spec: BridgeSpec) -> tuple[Bridge, str]:
    """Trained weights when configured, else a seeded random (untrained) bridge; and its id."""
    if config.weights is None:
        logger.warning("no bridge weights configured: using an untrained bridge")
        torch.manual_seed(0)
        digest = hashlib.sha256(json.dumps(spec.__dict__, sort_keys=True).encode()).hexdigest()
        return Bridge(spec, config.logit_scale_init), f"untrained-{digest[:12]}"
    bridge = load_bridge(config.weights, spec)
    digest = hashlib.sha256((Path(config.weights) / WEIGHTS_FILE).read_bytes()).hexdigest()
    return bridge, f"bridge-{digest[:16]}"


def caption_datastore(config: BridgeConfig) -> CaptionDatastore | None:
    """The configured caption datastore (None where there is none); not yet checked against
    the encoder: only its users need it to match.
    """
    return load_datastore(Path(config.datastore)) if config.datastore else None


def description_hints(config: BridgeConfig, bridge: Bridge, encoder: ClipImageEncoder,
                      store: CaptionDatastore | None) -> DescriptionHints | None:
    """The neighbour captions a bridge tuned with them reads (None for any other bridge).

    Raises:
        ValueError: the bridge needs a datastore and none is configured, or the datastore's
            vectors come from another encoder.
    """
    spec = bridge.neighbour_hints
    if spec is None:
        return None
    if store is None:
        raise ValueError(f"the bridge in {config.weights} describes with the captions of "
                         "images like it: set engine.bridge.datastore to the caption "
                         "datastore it was tuned with (weights/datastore)")
    _same_encoder(store, encoder, config)
    return DescriptionHints(NeighbourHints(store, spec.neighbours, spec.shown), encoder.project)


def _same_encoder(store: CaptionDatastore, encoder: ClipImageEncoder, config: BridgeConfig
                  ) -> None:
    if store.encoder_id != encoder.projected_id:
        raise ValueError(f"the caption datastore in {config.datastore} holds vectors of "
                         f"{store.encoder_id}; this engine's encoder makes {encoder.projected_id}")


def build_backend(config: EngineConfig, lm: LanguageModel, bridge: Bridge) -> Backend:
    if config.backend == "hf":
        return HfBackend(lm, bridge, config.batching)
    if config.backend == "vllm":
        from engine.backends.vllm_connect import connect_vllm  # only when configured

        return connect_vllm(config.vllm, lm, bridge)
    raise ValueError(f"unknown backend {config.backend!r} (known: 'hf', 'vllm')")
